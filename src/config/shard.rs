//! The `shard:` section: which share of a shared camera database this instance serves.
//!
//! The index is given directly or read from an environment variable holding a number or a
//! name that ends in one (a StatefulSet pod's `camsync-3`). Invariant: a resolved
//! [`Shard`] has `index < count`.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// This instance's shard. Invariant: `index < count`, `count >= 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
    /// Where `shard:` is set, e.g. `camsync.yaml:14`: named when a pin does not fit `count`.
    pub origin: String,
}

/// The shard index in a value such as a StatefulSet pod's name: the number itself (`3`), or
/// the number after the last `-` (`camsync-3`). `None` when there is none.
fn parse_ordinal(value: &str) -> Option<u32> {
    let value = value.trim();
    let digits = value.rsplit_once('-').map_or(value, |(_, tail)| tail);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShard {
    pub index: Option<Spanned<u32>>,
    pub index_env: Option<Spanned<String>>,
    pub count: Spanned<u32>,
}

/// Resolves the section found at `section_line` of `file`; an error is (line, key, reason).
pub(super) fn resolve(
    raw: RawShard,
    file: &str,
    section_line: u64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Shard, (u64, &'static str, String)> {
    let (count, count_line) = (raw.count.value, raw.count.referenced.line());
    if count == 0 {
        return Err((
            count_line,
            "shard.count",
            "must be at least 1 (the number of camsync instances sharing the cameras)".into(),
        ));
    }
    let (index, line, key) = match (raw.index, raw.index_env) {
        (Some(index), None) => (index.value, index.referenced.line(), "shard.index"),
        (None, Some(var)) => {
            let at = var.referenced.line();
            let Some(value) = env(&var.value) else {
                return Err((
                    at,
                    "shard.index_env",
                    format!(
                        "environment variable {} is not set; set it to this instance's shard \
                         index (in Kubernetes, POD_NAME from the pod's metadata.name)",
                        var.value
                    ),
                ));
            };
            let Some(index) = parse_ordinal(&value) else {
                return Err((
                    at,
                    "shard.index_env",
                    format!(
                        "{}={} holds no shard index: expected a number or a name ending \
                         in -N, such as camsync-3",
                        var.value,
                        crate::echo::Echo(&value)
                    ),
                ));
            };
            (index, at, "shard.index_env")
        }
        (Some(index), Some(_)) => {
            return Err((
                index.referenced.line(),
                "shard.index",
                "set `index` or `index_env`, not both".into(),
            ));
        }
        (None, None) => {
            return Err((
                section_line,
                "shard",
                "set `index` (0 to count-1) or `index_env` (a variable holding it, such as a \
                 StatefulSet pod's name)"
                    .into(),
            ));
        }
    };
    if index >= count {
        return Err((
            line,
            key,
            format!(
                "shard index {index} does not exist with `count: {count}` (shards are numbered \
                 0 to {}); raise `count` or run fewer instances",
                count - 1
            ),
        ));
    }
    Ok(Shard {
        index,
        count,
        // A pin beyond `count` is a conflict with this line.
        origin: format!("{file}:{count_line}"),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;
    use super::parse_ordinal;

    const BASE: &str = "\
source:
  file: cameras.yaml
targets:
  - name: go2rtc
    kind: go2rtc
    api: http://127.0.0.1:1984
";

    fn load(shard: &str, pod: Option<&str>) -> Result<Option<(u32, u32)>, String> {
        let env = |v: &str| (v == "POD_NAME").then(|| pod.map(str::to_owned)).flatten();
        parse(
            &format!("{BASE}{shard}"),
            Path::new("/etc/camsync/camsync.yaml"),
            &env,
        )
        .map(|c| c.shard.map(|s| (s.index, s.count)))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_index_comes_from_the_file_or_a_statefulset_pod_name() {
        assert_eq!(load("", None), Ok(None));
        assert_eq!(
            load("shard:\n  index: 1\n  count: 3\n", None),
            Ok(Some((1, 3)))
        );
        assert_eq!(
            load(
                "shard:\n  index_env: POD_NAME\n  count: 3\n",
                Some("camsync-2")
            ),
            Ok(Some((2, 3)))
        );
        let c = parse(
            &format!("{BASE}shard:\n  index: 0\n  count: 2\n"),
            Path::new("/etc/camsync/camsync.yaml"),
            &|_| None,
        )
        .unwrap();
        assert_eq!(c.shard.unwrap().origin, "/etc/camsync/camsync.yaml:9");
    }

    #[test]
    fn every_mistake_names_the_file_the_line_and_the_key() {
        let cases = [
            (
                "shard:\n  index_env: POD_NAME\n  count: 3\n",
                None,
                "camsync.yaml:8: `shard.index_env`: environment variable POD_NAME is not set",
            ),
            (
                "shard:\n  index_env: POD_NAME\n  count: 3\n",
                Some("camsync"),
                "camsync.yaml:8: `shard.index_env`: POD_NAME=\"camsync\" holds no shard index",
            ),
            (
                "shard:\n  index_env: POD_NAME\n  count: 3\n",
                Some("camsync-3"),
                "camsync.yaml:8: `shard.index_env`: shard index 3 does not exist with `count: 3`",
            ),
            (
                "shard:\n  index: 0\n  count: 0\n",
                None,
                "camsync.yaml:9: `shard.count`: must be at least 1",
            ),
            (
                "shard:\n  count: 2\n",
                None,
                "camsync.yaml:8: `shard`: set `index`",
            ),
            (
                "shard:\n  index: 0\n  index_env: POD_NAME\n  count: 2\n",
                Some("camsync-1"),
                "camsync.yaml:8: `shard.index`: set `index` or `index_env`, not both",
            ),
        ];
        for (shard, pod, want) in cases {
            let e = load(shard, pod).unwrap_err();
            assert!(e.contains(want), "{shard}: {e}");
        }
        let e = load("shard:\n  index: 0\n  count: 2\n  label: x\n", None).unwrap_err();
        assert!(e.contains("label"), "{e}");
    }

    #[test]
    fn ordinals_come_from_numbers_and_statefulset_pod_names() {
        for (value, want) in [
            ("3", Some(3)),
            ("camsync-3", Some(3)),
            ("go2rtc-camsync-12", Some(12)),
            (" camsync-0\n", Some(0)),
            ("camsync", None),
            ("camsync-", None),
            ("camsync-x1", None),
            ("", None),
            ("camsync-99999999999", None),
        ] {
            assert_eq!(parse_ordinal(value), want, "{value:?}");
        }
    }
}
