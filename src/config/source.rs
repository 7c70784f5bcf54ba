//! The `source:` section: exactly one of `file`, `sqlite` or `postgres`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{ConfigError, parse_duration};

pub const DEFAULT_SQLITE_POLL: Duration = Duration::from_secs(1);

/// Where the camera inventory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    /// A YAML or JSON camera inventory, watched for changes.
    File(PathBuf),
    /// An SQLite database, read-only, polled for changes.
    Sqlite(SqliteConfig),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    file: Option<String>,
    sqlite: Option<Spanned<RawSqlite>>,
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
    invalid: &dyn Fn(u64, &str, String) -> ConfigError,
) -> Result<SourceConfig, ConfigError> {
    match (raw.file, raw.sqlite) {
        (Some(file), None) => Ok(SourceConfig::File(base.join(file))),
        (None, Some(sqlite)) => {
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
}
