//! The camera model: what a camera is once its record has been validated.
//!
//! [`CameraSpec`] is a record as a source delivers it (a YAML entry, later a database row);
//! [`CameraSpec::validate`] turns it into a [`Camera`] or a [`CameraError`] that names the camera
//! and the reason. Credentials are held as [`Secret`]s and put into a source URL only by
//! [`SourceUrl::expose`], at the moment a request is built.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::config::{NestAccountConfig, ResolverConfig, TargetKind};
use crate::echo::Echo;
use crate::profile::Profiles;
use crate::secret::{Secret, redact};
use crate::source_url::{CredentialError, SourceUrl};
use crate::stream_name::check_stream_name;
use crate::target::mediamtx::rules::{self as mediamtx, MediamtxFields};

pub const DEFAULT_PROFILE: &str = "viewing";

/// A camera record as a source delivers it, before validation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    pub name: String,
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub profile: Option<String>,
    pub targets: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// Raw MediaMTX path fields, layered over the profile's.
    pub mediamtx: Option<MediamtxFields>,
    /// Pins the camera to this shard when camsync runs sharded (`shard:` in camsync.yaml);
    /// without it the camera's name picks its shard. Ignored when not sharded.
    pub shard: Option<u32>,
    /// A Google Nest camera: its stream URL is generated through the account's SDM API and
    /// expires (instead of `url`).
    pub nest: Option<NestSpec>,
    /// A camera whose URL a resolver of the config (`resolvers:`) tells (instead of `url`).
    pub resolve: Option<ResolveSpec>,
}

/// `resolve:` of a camera record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveSpec {
    /// A resolver of `resolvers:` in camsync.yaml.
    pub resolver: String,
    /// What `{device}` stands for in the resolver's command or URL.
    pub device: String,
}

/// `nest:` of a camera record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NestSpec {
    /// An account of `nest_accounts:` in camsync.yaml.
    pub account: String,
    /// The device id, or its full name `enterprises/<project>/devices/<id>`.
    pub device: String,
}

/// A validated `nest:` or `resolve:`: which account or resolver tells the camera's URL, for
/// which device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverRef {
    /// A Nest account's or a resolver's name (they share one namespace).
    pub resolver: String,
    /// Nest: `enterprises/<project>/devices/<id>`; a resolver: the camera's `device`.
    pub device: String,
}

/// What a spec is validated against.
pub struct ValidationContext<'a> {
    /// Where relative `password_file` paths start.
    pub base_dir: &'a Path,
    pub targets: &'a BTreeMap<String, TargetKind>,
    pub profiles: &'a Profiles,
    /// Reads an environment variable; injectable for tests.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The password files read so far in this validation pass.
    pub secret_files: SecretFiles,
    /// The accounts `nest:` may name.
    pub nest_accounts: &'a [NestAccountConfig],
    /// The resolvers `resolve:` may name.
    pub resolvers: &'a [ResolverConfig],
    /// The cameras of the last pass, and those of this one.
    earlier: Validated,
    now: RefCell<Validated>,
}

impl<'a> ValidationContext<'a> {
    pub fn new(
        base_dir: &'a Path,
        targets: &'a BTreeMap<String, TargetKind>,
        profiles: &'a Profiles,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> ValidationContext<'a> {
        ValidationContext {
            base_dir,
            targets,
            profiles,
            env,
            secret_files: SecretFiles::default(),
            nest_accounts: &[],
            resolvers: &[],
            earlier: Validated::default(),
            now: RefCell::default(),
        }
    }

    /// Lets `nest:` and `resolve:` name these accounts and resolvers.
    pub fn with_resolvers(
        mut self,
        nest_accounts: &'a [NestAccountConfig],
        resolvers: &'a [ResolverConfig],
    ) -> Self {
        self.nest_accounts = nest_accounts;
        self.resolvers = resolvers;
        self
    }

    /// Lets this pass reuse the cameras of an earlier one against the same targets and profiles
    /// (see [`Validated`]).
    pub fn remembering(mut self, earlier: Validated) -> Self {
        self.now = RefCell::new(Validated(HashMap::with_capacity(earlier.0.len())));
        self.earlier = earlier;
        self
    }

    /// The cameras validated in this pass, for the next. (A source that could not be read is
    /// never validated, so the memo of its last read stays.)
    pub fn into_validated(self) -> Validated {
        self.now.into_inner()
    }
}

/// The cameras one validation pass made, by name, with the spec and password each came from.
/// The next pass reuses a camera whose spec and password are unchanged instead of validating it
/// again: a webhook re-reads the whole inventory, and with thousands of cameras the validation
/// (URL parsing, profiles, credentials) was most of that read. Sharing the camera also makes
/// comparing two inventories a pointer comparison per unchanged camera.
#[derive(Default)]
pub struct Validated(HashMap<String, Known>);

struct Known {
    spec: Arc<CameraSpec>,
    password: Option<Secret>,
    camera: Arc<Camera>,
}

/// Password files read during one validation pass: each is read once, however many cameras
/// name it (a thousand cameras often share one).
#[derive(Default)]
pub struct SecretFiles(RefCell<HashMap<PathBuf, Result<Secret, String>>>);

impl SecretFiles {
    /// The secret in `path` (relative to `base_dir`), read at its first mention.
    fn read(&self, base_dir: &Path, path: &Path) -> Result<Secret, String> {
        if let Some(read) = self.0.borrow().get(path) {
            return read.clone();
        }
        let read = crate::config::read_secret_file(&base_dir.join(path));
        self.0.borrow_mut().insert(path.to_owned(), read.clone());
        read
    }
}

/// Validated cameras by name, shared between the inventories and passes that hold them.
pub type Cameras = BTreeMap<String, Arc<Camera>>;

/// A validated camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Camera {
    /// The stream/path name on every server; the camera's identity.
    pub name: String,
    pub sources: Vec<SourceUrl>,
    pub profile: String,
    /// Target names; `None` means every target.
    pub targets: Option<BTreeSet<String>>,
    pub enabled: bool,
    /// go2rtc keeps the stream connected (from the profile).
    pub preload: bool,
    /// MediaMTX path fields: `rtspTransport: tcp`, then the profile's, then the camera's own.
    pub mediamtx: MediamtxFields,
    /// The shard the record pins the camera to, if any (see [`crate::source::shard`]).
    pub shard: Option<u32>,
    /// Set for a Nest camera or one with `resolve:`: `sources` is empty until its stream is
    /// resolved.
    pub resolver: Option<ResolverRef>,
}

impl Camera {
    /// Whether the camera belongs on `target` now (enabled, assigned, with a source).
    pub fn wants_target(&self, target: &str) -> bool {
        self.assigned(target) && !self.sources.is_empty()
    }

    /// Assigned to `target` but without a source until its URL is resolved: neither written
    /// nor deleted there meanwhile.
    pub fn awaits_source(&self, target: &str) -> bool {
        self.assigned(target) && self.sources.is_empty()
    }

    fn assigned(&self, target: &str) -> bool {
        self.enabled && self.targets.as_ref().is_none_or(|t| t.contains(target))
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CameraError {
    #[error("camera {}: invalid name: {reason}", Echo(.name))]
    InvalidName { name: String, reason: &'static str },
    #[error("camera {}: give either `url` or `urls`, not both", Echo(.name))]
    UrlAndUrls { name: String },
    #[error("camera {}: no source: set `url` (or `urls`)", Echo(.name))]
    NoUrl { name: String },
    #[error("camera {}: invalid url {}: {reason}", Echo(.name), Echo(.url))]
    InvalidUrl {
        name: String,
        url: String,
        reason: String,
    },
    #[error("camera {}: credentials are given both inside the url and as username/password; keep one", Echo(.name))]
    CredentialsTwice { name: String },
    #[error("camera {}: set only one of `password`, `password_env`, `password_file`", Echo(.name))]
    PasswordTwice { name: String },
    #[error("camera {}: a password is set but no username", Echo(.name))]
    PasswordWithoutUser { name: String },
    #[error("camera {}: missing secret: {reason}", Echo(.name))]
    MissingSecret { name: String, reason: String },
    #[error("camera {}: unknown target {} (targets in the config: {known})", Echo(.name), Echo(.target))]
    UnknownTarget {
        name: String,
        target: String,
        known: String,
    },
    #[error("camera {}: unknown profile {} (known: {known})", Echo(.name), Echo(.profile))]
    UnknownProfile {
        name: String,
        profile: String,
        known: String,
    },
    #[error("camera {}: {reason}", Echo(.name))]
    MediamtxField { name: String, reason: String },
    #[error("camera {}: MediaMTX target {} cannot pull {}; limit the camera's `targets` or give it an rtsp:// (rtmp, http, srt, udp, whep) source first", Echo(.name), Echo(.target), Echo(.url))]
    NotForMediamtx {
        name: String,
        target: String,
        url: String,
    },
    #[error("camera {}: {reason}", Echo(.name))]
    Resolver { name: String, reason: String },
    #[error("camera {}: duplicate name (first defined {first})", Echo(.name))]
    Duplicate { name: String, first: String },
}

impl CameraSpec {
    pub fn validate(self, ctx: &ValidationContext<'_>) -> Result<Camera, CameraError> {
        let password = self.resolve_password(ctx);
        self.validate_with(password, ctx)
    }

    /// [`CameraSpec::validate`], reusing the earlier pass's camera when the spec and its
    /// password are what they were (see [`Validated`]).
    pub fn validate_shared(
        spec: Arc<CameraSpec>,
        ctx: &ValidationContext<'_>,
    ) -> Result<Arc<Camera>, CameraError> {
        let password = spec.resolve_password(ctx);
        let reused = match (&password, ctx.earlier.0.get(&spec.name)) {
            (Ok(password), Some(known))
                if (Arc::ptr_eq(&known.spec, &spec) || known.spec == spec)
                    && known.password == *password =>
            {
                Some(known.camera.clone())
            }
            _ => None,
        };
        let camera = match reused {
            Some(camera) => camera,
            None => Arc::new((*spec).clone().validate_with(password.clone(), ctx)?),
        };
        if let Ok(password) = password {
            ctx.now
                .borrow_mut()
                .0
                .entry(spec.name.clone())
                .or_insert_with(|| Known {
                    spec,
                    password,
                    camera: camera.clone(),
                });
        }
        Ok(camera)
    }

    fn validate_with(
        self,
        password: Result<Option<Secret>, CameraError>,
        ctx: &ValidationContext<'_>,
    ) -> Result<Camera, CameraError> {
        let name = self.name;
        if let Err(reason) = check_stream_name(&name) {
            return Err(CameraError::InvalidName { name, reason });
        }
        let password = password?;
        let given_url = self.url.is_some() || self.urls.is_some();
        let given_credentials = self.username.is_some() || password.is_some();
        let resolver = resolver_ref(self.nest, self.resolve, given_url, given_credentials, ctx)
            .map_err(|reason| CameraError::Resolver {
                name: name.clone(),
                reason,
            })?;
        let raw_urls = match (self.url, self.urls) {
            _ if resolver.is_some() => Vec::new(),
            (Some(_), Some(_)) => return Err(CameraError::UrlAndUrls { name }),
            (Some(url), None) => vec![url],
            (None, Some(urls)) if !urls.is_empty() => urls,
            _ => return Err(CameraError::NoUrl { name }),
        };
        if password.is_some() && self.username.is_none() {
            return Err(CameraError::PasswordWithoutUser { name });
        }
        let mut sources = Vec::with_capacity(raw_urls.len());
        for raw in raw_urls {
            let source = SourceUrl::parse(&raw).map_err(|reason| CameraError::InvalidUrl {
                name: name.clone(),
                url: redact(&raw),
                reason,
            })?;
            let source = if self.username.is_some() {
                source
                    .with_credentials(self.username.clone(), password.clone())
                    .map_err(|e| match e {
                        CredentialError::Twice => CameraError::CredentialsTwice { name: name.clone() },
                        CredentialError::NoAuthority => CameraError::InvalidUrl {
                            name: name.clone(),
                            url: redact(&raw),
                            reason: "credentials are set but the source has no `scheme://host` to attach them to".into(),
                        },
                    })?
            } else {
                source
            };
            sources.push(source);
        }
        let profile_name = self.profile.unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
        let Some(profile) = ctx.profiles.get(&profile_name) else {
            return Err(CameraError::UnknownProfile {
                name,
                profile: profile_name,
                known: join(&ctx.profiles.names()),
            });
        };
        let targets: Option<BTreeSet<String>> = match self.targets {
            None => None,
            Some(list) => {
                if let Some(unknown) = list.iter().find(|t| !ctx.targets.contains_key(*t)) {
                    return Err(CameraError::UnknownTarget {
                        name,
                        target: unknown.clone(),
                        known: join(&ctx.targets.keys().cloned().collect()),
                    });
                }
                Some(list.into_iter().collect())
            }
        };
        let mediamtx_target = ctx.targets.iter().find(|(t, kind)| {
            kind.is_mediamtx() && targets.as_ref().is_none_or(|set| set.contains(*t))
        });
        if let (Some((target, _)), Some(first)) = (mediamtx_target, sources.first())
            && !mediamtx::can_pull(first.scheme())
        {
            return Err(CameraError::NotForMediamtx {
                name,
                target: target.clone(),
                url: first.redacted(),
            });
        }
        let file_target = ctx.targets.iter().find(|(t, kind)| {
            kind.is_file() && targets.as_ref().is_none_or(|set| set.contains(*t))
        });
        if let (Some(_), Some((target, _))) = (&resolver, file_target) {
            return Err(CameraError::Resolver {
                name,
                reason: format!(
                    "file target {} reads its file only at its start, and a resolved stream URL \
                     expires; limit the camera's `targets` to API targets",
                    Echo(target)
                ),
            });
        }
        let mediamtx =
            mediamtx::path_fields(&profile.mediamtx, self.mediamtx).map_err(|reason| {
                CameraError::MediamtxField {
                    name: name.clone(),
                    reason,
                }
            })?;
        Ok(Camera {
            name,
            sources,
            preload: profile.preload,
            profile: profile_name,
            targets,
            enabled: self.enabled.unwrap_or(true),
            mediamtx,
            shard: self.shard,
            resolver,
        })
    }

    /// The password as `password`, `password_env` or `password_file` gives it now.
    fn resolve_password(&self, ctx: &ValidationContext<'_>) -> Result<Option<Secret>, CameraError> {
        let missing = |reason: String| CameraError::MissingSecret {
            name: self.name.clone(),
            reason,
        };
        match (&self.password, &self.password_env, &self.password_file) {
            (None, None, None) => Ok(None),
            (Some(secret), None, None) => Ok(Some(secret.clone())),
            (None, Some(var), None) => match (ctx.env)(var) {
                Some(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
                _ => Err(missing(format!(
                    "environment variable {var} (password_env) is not set or empty"
                ))),
            },
            (None, None, Some(path)) => ctx
                .secret_files
                .read(ctx.base_dir, path)
                .map(Some)
                .map_err(|e| missing(format!("password_file: {e}"))),
            _ => Err(CameraError::PasswordTwice {
                name: self.name.clone(),
            }),
        }
    }
}

/// A `nest:` or `resolve:` checked against the config's accounts and resolvers.
fn resolver_ref(
    nest: Option<NestSpec>,
    resolve: Option<ResolveSpec>,
    given_url: bool,
    given_credentials: bool,
    ctx: &ValidationContext<'_>,
) -> Result<Option<ResolverRef>, String> {
    let key = match (&nest, &resolve) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err("give either `nest` or `resolve`, not both".into()),
        (Some(_), None) => "nest",
        (None, Some(_)) => "resolve",
    };
    if given_url {
        return Err(format!("give either `url`/`urls` or `{key}`, not both"));
    }
    if given_credentials {
        return Err(format!(
            "a camera with `{key}` takes no username or password (its resolver has them)"
        ));
    }
    let unknown = |what: &str, name: &str, known: BTreeSet<String>| {
        format!(
            "{key}: unknown {what} {} (in the config: {})",
            Echo(name),
            if known.is_empty() {
                "none".to_owned()
            } else {
                join(&known)
            }
        )
    };
    if let Some(spec) = nest {
        let Some(account) = ctx.nest_accounts.iter().find(|a| a.name == spec.account) else {
            let known = ctx.nest_accounts.iter().map(|a| a.name.clone()).collect();
            return Err(unknown("nest account", &spec.account, known));
        };
        let device = account
            .device_name(&spec.device)
            .map_err(|e| format!("nest: {e}"))?;
        return Ok(Some(ResolverRef {
            resolver: spec.account,
            device,
        }));
    }
    let Some(spec) = resolve else {
        return Ok(None);
    };
    if !ctx.resolvers.iter().any(|r| r.name == spec.resolver) {
        let known = ctx.resolvers.iter().map(|r| r.name.clone()).collect();
        return Err(unknown("resolver", &spec.resolver, known));
    }
    if spec.device.is_empty() || spec.device.chars().any(char::is_control) {
        return Err("resolve: `device` must be a non-empty name without control characters".into());
    }
    Ok(Some(ResolverRef {
        resolver: spec.resolver,
        device: spec.device,
    }))
}

fn join(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
impl Camera {
    /// A camera for unit tests: `viewing`, on every target, enabled.
    pub(crate) fn example(name: &str, url: &str) -> Camera {
        Camera {
            name: name.into(),
            sources: vec![SourceUrl::parse(url).expect("a valid test URL")],
            profile: "viewing".into(),
            targets: None,
            enabled: true,
            preload: false,
            mediamtx: Default::default(),
            shard: None,
            resolver: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_with<'a>(
        targets: &'a BTreeMap<String, TargetKind>,
        profiles: &'a Profiles,
        env: &'a dyn Fn(&str) -> Option<String>,
    ) -> ValidationContext<'a> {
        ValidationContext::new(Path::new("."), targets, profiles, env)
    }

    fn go2rtc_only() -> BTreeMap<String, TargetKind> {
        [("go2rtc".to_string(), TargetKind::Go2rtc)].into()
    }

    fn spec(name: &str, url: &str) -> CameraSpec {
        CameraSpec {
            name: name.into(),
            url: Some(url.into()),
            ..CameraSpec::default()
        }
    }

    #[test]
    fn credentials_are_percent_encoded_only_when_exposed() {
        let targets = go2rtc_only();
        let profiles = Profiles::builtin();
        let env = |v: &str| (v == "PW").then(|| "p@ss:w/rd".to_string());
        let mut s = spec("cam", "rtsp://192.0.2.10:554/s1#transport=tcp");
        s.username = Some("admin".into());
        s.password_env = Some("PW".into());
        let cam = s.validate(&ctx_with(&targets, &profiles, &env)).unwrap();
        assert_eq!(
            cam.sources[0].expose(),
            "rtsp://admin:p%40ss%3Aw%2Frd@192.0.2.10:554/s1#transport=tcp"
        );
        assert_eq!(
            cam.sources[0].to_string(),
            "rtsp://admin:***@192.0.2.10:554/s1#transport=tcp"
        );
        assert!(!format!("{cam:?}").contains("p@ss"));
    }

    #[test]
    fn every_problem_names_the_camera() {
        let targets = go2rtc_only();
        let profiles = Profiles::builtin();
        let env = |_: &str| None;
        let ctx = ctx_with(&targets, &profiles, &env);
        let mut missing = spec("door", "rtsp://192.0.2.1/x");
        missing.username = Some("u".into());
        missing.password_env = Some("NOPE".into());
        let mut unknown_target = spec("yard", "rtsp://192.0.2.1/x");
        unknown_target.targets = Some(vec!["mediamtx".into()]);
        let mut bad_profile = spec("hall", "rtsp://192.0.2.1/x");
        bad_profile.profile = Some("party".into());
        for (s, needle) in [
            (missing, "NOPE"),
            (unknown_target, "mediamtx"),
            (bad_profile, "party"),
            (spec("all", "rtsp://192.0.2.1/x"), "catch-all"),
            (
                CameraSpec {
                    name: "x".into(),
                    ..CameraSpec::default()
                },
                "no source",
            ),
        ] {
            let name = s.name.clone();
            let err = s.validate(&ctx).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{name:?}")) && err.contains(needle),
                "{err}"
            );
        }
    }

    #[test]
    fn profiles_and_raw_fields_resolve_into_mediamtx_settings() {
        let targets: BTreeMap<String, TargetKind> = [
            ("go2rtc".to_string(), TargetKind::Go2rtc),
            ("mtx".to_string(), TargetKind::Mediamtx),
        ]
        .into();
        let profiles = Profiles::builtin();
        let env = |_: &str| None;
        let ctx = ctx_with(&targets, &profiles, &env);
        let mut s = spec("rec", "rtsp://192.0.2.1/x");
        s.profile = Some("recording".into());
        s.mediamtx = Some(
            serde_json::json!({"recordDeleteAfter": "7d", "maxReaders": 3})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let cam = s.validate(&ctx).unwrap();
        assert!(cam.preload);
        assert_eq!(cam.mediamtx["rtspTransport"], "tcp");
        assert_eq!(cam.mediamtx["record"], true);
        assert_eq!(cam.mediamtx["recordDeleteAfter"], "7d");
        assert_eq!(cam.mediamtx["maxReaders"], 3);

        let mut typo = spec("typo", "rtsp://192.0.2.1/x");
        typo.mediamtx = Some(
            serde_json::json!({"recordPaht": "x"})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let e = typo.validate(&ctx).unwrap_err().to_string();
        assert!(e.contains("\"typo\"") && e.contains("recordPaht"), "{e}");

        let e = spec("ff", "ffmpeg:rtsp://192.0.2.1/x")
            .validate(&ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"mtx\"") && e.contains("targets"), "{e}");
        let mut only_go2rtc = spec("ff", "ffmpeg:rtsp://192.0.2.1/x");
        only_go2rtc.targets = Some(vec!["go2rtc".into()]);
        assert!(only_go2rtc.validate(&ctx).is_ok());
    }
}
