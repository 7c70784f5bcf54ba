//! The `source:` section: exactly one of `file`, `sqlite` or `postgres`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::values::{ConfigError, Invalid, parse_duration, resolve_secret};
use crate::secret::Secret;

pub const DEFAULT_SQLITE_POLL: Duration = Duration::from_secs(1);
pub const DEFAULT_POSTGRES_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the camera inventory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// A YAML or JSON camera inventory, watched for changes.
    File(PathBuf),
    /// An SQLite database, read-only, polled for changes.
    Sqlite(SqliteConfig),
    /// A Postgres database, read-only; changes heard through `LISTEN`.
    Postgres(Box<PostgresConfig>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file (relative paths start at the config's directory).
    pub path: PathBuf,
    /// A read-only query whose columns are mapped by name to camera fields.
    pub query: String,
    /// How often `PRAGMA data_version` is read to notice a change (default 1s).
    pub poll: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// Where to connect, with the credentials (from `url_env` or `url_file`). Its `Debug`
    /// hides the password.
    pub connect: tokio_postgres::Config,
    /// A query whose columns are mapped by name to camera fields; run in a read-only
    /// transaction.
    pub query: String,
    /// The channel whose notifications trigger a re-read; without one, only the periodic
    /// resync reads the database again.
    pub listen: Option<String>,
    /// Limit of one connect or one read (default 10s).
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    file: Option<String>,
    sqlite: Option<Spanned<RawSqlite>>,
    postgres: Option<Spanned<RawPostgres>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    url_env: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
    query: Spanned<String>,
    listen: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqlite {
    path: String,
    query: Spanned<String>,
    poll: Option<Spanned<String>>,
}

/// Validates the section; `line` is where `source:` is, `invalid` builds a located error.
pub(super) fn parse(
    raw: RawSource,
    line: u64,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    invalid: &Invalid<'_>,
) -> Result<SourceConfig, ConfigError> {
    match (raw.file, raw.sqlite, raw.postgres) {
        (Some(file), None, None) => Ok(SourceConfig::File(base.join(file))),
        (None, None, Some(postgres)) => parse_postgres(postgres, base, env, invalid)
            .map(|c| SourceConfig::Postgres(Box::new(c))),
        (None, Some(sqlite), None) => {
            let line = sqlite.referenced.line();
            let sqlite = sqlite.value;
            let query = checked_query(&sqlite.query)
                .map_err(|r| invalid(sqlite.query.referenced.line(), "source.sqlite.query", r))?;
            let poll = match &sqlite.poll {
                None => DEFAULT_SQLITE_POLL,
                Some(p) => parse_duration(p)
                    .map_err(|r| invalid(p.referenced.line(), "source.sqlite.poll", r))?,
            };
            if sqlite.path.is_empty() {
                return Err(invalid(line, "source.sqlite.path", "is empty".into()));
            }
            Ok(SourceConfig::Sqlite(SqliteConfig {
                path: base.join(sqlite.path),
                query,
                poll,
            }))
        }
        _ => Err(invalid(
            line,
            "source",
            "give exactly one of `file`, `sqlite` or `postgres`".into(),
        )),
    }
}

fn parse_postgres(
    raw: Spanned<RawPostgres>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    invalid: &Invalid<'_>,
) -> Result<PostgresConfig, ConfigError> {
    let line = raw.referenced.line();
    let raw = raw.value;
    let url = resolve_secret(&raw.url_env, &raw.url_file, "url", base, env)
        .map_err(|(line, key, reason)| invalid(line, &format!("source.postgres.{key}"), reason))?
        .ok_or_else(|| {
            invalid(
                line,
                "source.postgres",
                "set `url_env` or `url_file`: the connection string holds credentials, so it is \
                 not written in this file"
                    .into(),
            )
        })?;
    let url_line = raw
        .url_env
        .as_ref()
        .or(raw.url_file.as_ref())
        .map_or(line, |s| s.referenced.line());
    let connect = parse_url(&url).map_err(|r| invalid(url_line, "source.postgres.url", r))?;
    let query = checked_query(&raw.query)
        .map_err(|r| invalid(raw.query.referenced.line(), "source.postgres.query", r))?;
    let listen = match raw.listen {
        None => None,
        Some(channel) => Some(
            checked_channel(&channel.value)
                .map_err(|r| invalid(channel.referenced.line(), "source.postgres.listen", r))?,
        ),
    };
    let timeout = match &raw.timeout {
        None => DEFAULT_POSTGRES_TIMEOUT,
        Some(t) => parse_duration(t)
            .map_err(|r| invalid(t.referenced.line(), "source.postgres.timeout", r))?,
    };
    Ok(PostgresConfig {
        connect,
        query,
        listen,
        timeout,
    })
}

/// Parses a connection string: a URL (`postgresql://user:pass@host/db`) or `key=value` pairs.
/// The error never quotes the string.
fn parse_url(url: &Secret) -> Result<tokio_postgres::Config, String> {
    let config: tokio_postgres::Config = url.expose().parse().map_err(|_| {
        "not a valid Postgres connection string: give a URL such as \
         postgresql://camsync@db.example/cameras or key=value pairs such as \
         `host=/run/postgresql dbname=cameras user=camsync`"
            .to_owned()
    })?;
    if config.get_hosts().is_empty() {
        return Err(
            "the connection string names no host: add one (`host=/run/postgresql` for the local \
             socket, or `postgresql://host/db`)"
                .into(),
        );
    }
    Ok(config)
}

/// Postgres truncates identifiers to 63 bytes; a longer name would never match `pg_notify`'s.
fn checked_channel(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(format!(
            "{} is not a channel name (1 to 63 bytes, as in pg_notify('cameras_changed', …))",
            crate::echo::Echo(name)
        ));
    }
    Ok(name.to_owned())
}

fn checked_query(query: &Spanned<String>) -> Result<String, String> {
    let text = query.value.trim();
    if text.is_empty() {
        return Err("the query is empty; give a SELECT that returns `name` and `url`".into());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGETS: &str =
        "targets:\n  - name: g\n    kind: go2rtc\n    api: http://127.0.0.1:1984\n";

    fn parse(source: &str) -> Result<SourceConfig, String> {
        let text = format!("{source}{TARGETS}");
        super::super::parse(&text, Path::new("/etc/camsync/camsync.yaml"), &|_| None)
            .map(|c| c.source)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn connection_strings_parse_and_their_errors_never_show_the_password() {
        let url = |s: &str| parse_url(&Secret::new(s));
        assert!(url("postgresql://cam:hunter2@db.example:5433/cameras").is_ok());
        assert!(url("host=/run/postgresql user=cam password=hunter2").is_ok());
        let e = url("host=x password='hunter2").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("key=value"), "{e}");
        let e = url("user=cam password=hunter2").unwrap_err();
        assert!(e.contains("no host"), "{e}");
    }

    #[test]
    fn sqlite_takes_a_path_relative_to_the_config_a_query_and_a_poll_defaulting_to_1s() {
        let source =
            parse("source:\n  sqlite:\n    path: nvr.db\n    query: SELECT name, url FROM cams\n")
                .unwrap();
        assert_eq!(
            source,
            SourceConfig::Sqlite(SqliteConfig {
                path: "/etc/camsync/nvr.db".into(),
                query: "SELECT name, url FROM cams".into(),
                poll: Duration::from_secs(1),
            })
        );
        let source =
            parse("source:\n  sqlite:\n    path: /a.db\n    query: |\n      SELECT *\n        FROM t\n    poll: 250ms\n")
                .unwrap();
        let SourceConfig::Sqlite(sqlite) = source else {
            panic!("{source:?}");
        };
        assert_eq!(sqlite.query, "SELECT *\n  FROM t");
        assert_eq!(sqlite.poll, Duration::from_millis(250));
    }

    #[test]
    fn exactly_one_kind_with_strict_keys_and_located_errors() {
        let e = parse("source:\n  file: c.yaml\n  sqlite:\n    path: a.db\n    query: SELECT 1\n")
            .unwrap_err();
        assert!(
            e.contains("camsync.yaml:2: `source`") && e.contains("exactly one"),
            "{e}"
        );
        let e = parse("source: {}\n").unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = parse("source:\n  sqlite:\n    path: a.db\n    query: SELECT 1\n    pol: 1s\n")
            .unwrap_err();
        assert!(e.contains("pol") && e.contains("line 5"), "{e}");
        let e = parse("source:\n  sqlite:\n    path: a.db\n    query: \"  \"\n").unwrap_err();
        assert!(e.contains("camsync.yaml:4: `source.sqlite.query`"), "{e}");
        let e = parse("source:\n  sqlite:\n    path: a.db\n    query: SELECT 1\n    poll: often\n")
            .unwrap_err();
        assert!(e.contains("camsync.yaml:5: `source.sqlite.poll`"), "{e}");
        let e = parse("source:\n  sqlite:\n    query: SELECT 1\n").unwrap_err();
        assert!(e.contains("path"), "{e}");
    }

    fn parse_with_env(
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SourceConfig, String> {
        let text = format!("{source}{TARGETS}");
        super::super::parse(&text, Path::new("/etc/camsync/camsync.yaml"), env)
            .map(|c| c.source)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn postgres_takes_its_url_from_the_environment_and_never_shows_it() {
        let text = "source:\n  postgres:\n    url_env: CAMS_DB\n    query: SELECT name, url FROM cameras\n    listen: cameras_changed\n";
        let env = |v: &str| {
            (v == "CAMS_DB").then(|| "postgresql://cam:hunter2@db.example/cams".to_string())
        };
        let SourceConfig::Postgres(pg) = parse_with_env(text, &env).unwrap() else {
            panic!("not postgres");
        };
        assert_eq!(pg.listen.as_deref(), Some("cameras_changed"));
        assert_eq!(pg.timeout, DEFAULT_POSTGRES_TIMEOUT);
        assert_eq!(pg.connect.get_dbname(), Some("cams"));
        assert!(!format!("{pg:?}").contains("hunter2"));

        let e = parse_with_env(text, &|_| None).unwrap_err();
        assert!(
            e.contains("camsync.yaml:3: `source.postgres.url_env`") && e.contains("CAMS_DB"),
            "{e}"
        );
        let broken = |v: &str| (v == "CAMS_DB").then(|| "host=x password='hunter2".to_string());
        let e = parse_with_env(text, &broken).unwrap_err();
        assert!(
            e.contains("`source.postgres.url`") && !e.contains("hunter2"),
            "{e}"
        );
        let e = parse_with_env(
            "source:\n  postgres:\n    query: SELECT 1\n    url: postgresql://a@b/c\n",
            &env,
        )
        .unwrap_err();
        assert!(e.contains("url") && e.contains("line 4"), "{e}");
        let e = parse_with_env("source:\n  postgres:\n    query: SELECT 1\n", &env).unwrap_err();
        assert!(e.contains("`url_env` or `url_file`"), "{e}");
        let long = "x".repeat(64);
        let e = parse_with_env(&text.replace("cameras_changed", &long), &env).unwrap_err();
        assert!(
            e.contains("camsync.yaml:5: `source.postgres.listen`"),
            "{e}"
        );
    }
}
