//! Database rows to camera records: the column mapping shared by the SQLite and Postgres
//! sources.
//!
//! Columns are matched by name (ASCII case-insensitive) to camera fields; other columns are
//! ignored, so a query may return whatever the database has. A result without a `name` column
//! or without any source column is unusable as a whole ([`SourceError::Query`]); every
//! other problem is a problem of one row, which is rejected on its own with the column named.
//! Values are never quoted in messages: a row may hold a password, and a URL its credentials.

use std::sync::Arc;

use super::reader::{Record, SourceError};
use crate::camera::CameraSpec;
use crate::echo::Echo;
use crate::secret::Secret;
use crate::target::mediamtx::rules::MediamtxFields;

/// One value as the database returned it, decoded only for the columns the mapping uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
    /// A Postgres `json`/`jsonb` value.
    Json(serde_json::Value),
    /// A Postgres text array; NULL elements are dropped.
    List(Vec<String>),
    Blob,
    /// A type the mapping cannot use, by its database name.
    Other(String),
}

impl Cell {
    fn kind(&self) -> &str {
        match self {
            Cell::Null => "NULL",
            Cell::Bool(_) => "a boolean",
            Cell::Int(_) => "an integer",
            Cell::Real(_) => "a real number",
            Cell::Text(_) => "text",
            Cell::Json(_) => "JSON",
            Cell::List(_) => "an array",
            Cell::Blob => "a blob",
            Cell::Other(name) => name,
        }
    }

    /// NULL and the empty string both mean "not set": NVR schemas default text columns to ''.
    fn is_unset(&self) -> bool {
        match self {
            Cell::Null => true,
            Cell::Text(s) => s.is_empty(),
            _ => false,
        }
    }
}

/// Camera fields a column can fill besides `name` and the sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Username,
    Password,
    PasswordEnv,
    PasswordFile,
    Profile,
    Enabled,
    Targets,
    Mediamtx,
    Shard,
}

impl Field {
    fn from_column(name: &str) -> Option<Field> {
        Some(match name {
            "username" => Field::Username,
            "password" => Field::Password,
            "password_env" => Field::PasswordEnv,
            "password_file" => Field::PasswordFile,
            "profile" => Field::Profile,
            "enabled" => Field::Enabled,
            "targets" => Field::Targets,
            "mediamtx" => Field::Mediamtx,
            "shard" => Field::Shard,
            _ => return None,
        })
    }
}

/// Which column of a query's result feeds which camera field.
#[derive(Debug)]
pub struct Columns {
    /// Named in row locations, e.g. `cameras.db`.
    database: String,
    width: usize,
    name: usize,
    /// `url` and `url_*`, in the query's order: the camera's sources in that order.
    urls: Vec<(usize, String)>,
    fields: Vec<(usize, Field, String)>,
    /// An `id` column, used only to point at a row in messages.
    id: Option<usize>,
}

impl Columns {
    /// Maps a result's column names. Fails when `name` or every source column is missing, or a
    /// column appears twice, since then no row can be used.
    pub fn new<'a>(
        database: &str,
        query: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Columns, SourceError> {
        let mut name = None;
        let mut urls = Vec::new();
        let mut fields: Vec<(usize, Field, String)> = Vec::new();
        let mut id = None;
        let mut width = 0;
        let twice = |column: &str| SourceError::Query {
            database: database.to_owned(),
            reason: format!("the result has two columns named `{column}`; keep one"),
            query: query.to_owned(),
        };
        for (index, raw) in names.into_iter().enumerate() {
            width = index + 1;
            let column = raw.to_ascii_lowercase();
            if column == "name" {
                if name.replace(index).is_some() {
                    return Err(twice(&column));
                }
            } else if column == "url" || column.starts_with("url_") {
                if urls.iter().any(|(_, c)| *c == column) {
                    return Err(twice(&column));
                }
                urls.push((index, column));
            } else if column == "id" {
                id = Some(index);
            } else if let Some(field) = Field::from_column(&column) {
                if fields.iter().any(|(_, f, _)| *f == field) {
                    return Err(twice(&column));
                }
                fields.push((index, field, column));
            }
        }
        let missing = |reason: &str| SourceError::Query {
            database: database.to_owned(),
            reason: reason.to_owned(),
            query: query.to_owned(),
        };
        let Some(name) = name else {
            return Err(missing(
                "the result has no `name` column; name the stream-name column `name` (`… AS name`)",
            ));
        };
        if urls.is_empty() {
            return Err(missing(
                "the result has no `url` column (nor any `url_*`); name the source column `url` (`… AS url`)",
            ));
        }
        Ok(Columns {
            database: database.to_owned(),
            width,
            name,
            urls,
            fields,
            id,
        })
    }

    /// The number of columns in a row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether column `index` is read at all; the others need not be decoded.
    pub fn uses(&self, index: usize) -> bool {
        index == self.name
            || self.id == Some(index)
            || self.urls.iter().any(|(i, _)| *i == index)
            || self.fields.iter().any(|(i, _, _)| *i == index)
    }

    /// Turns row `number` (1-based) into a record; `cells` has one entry per column.
    pub fn record(&self, number: usize, cells: Vec<Cell>) -> Record {
        let location = match self.id.and_then(|i| cells.get(i)) {
            Some(Cell::Int(id)) => format!("{} row {number} (id {id})", self.database),
            Some(Cell::Text(id)) if !id.is_empty() => {
                format!("{} row {number} (id {})", self.database, Echo(id))
            }
            _ => format!("{} row {number}", self.database),
        };
        let name = match cells.get(self.name) {
            Some(Cell::Text(name)) => Some(name.clone()),
            _ => None,
        };
        Record {
            location,
            name,
            spec: self.spec(cells).map(Arc::new),
        }
    }

    fn spec(&self, mut cells: Vec<Cell>) -> Result<CameraSpec, String> {
        let mut take = |index: usize| {
            cells
                .get_mut(index)
                .map_or(Cell::Null, |c| std::mem::replace(c, Cell::Null))
        };
        let name = match take(self.name) {
            Cell::Text(name) => name,
            Cell::Null => return Err("column `name` is NULL".into()),
            other => return Err(wrong_type("name", &other, "text")),
        };
        let mut urls = Vec::with_capacity(self.urls.len());
        for (index, column) in &self.urls {
            match take(*index) {
                cell if cell.is_unset() => {}
                Cell::Text(url) => urls.push(url),
                other => return Err(wrong_type(column, &other, "text")),
            }
        }
        if urls.is_empty() {
            let columns: Vec<String> = self.urls.iter().map(|(_, c)| format!("`{c}`")).collect();
            return Err(format!(
                "no source: column {} is NULL or empty",
                columns.join(", ")
            ));
        }
        let mut spec = CameraSpec {
            name,
            ..CameraSpec::default()
        };
        if urls.len() == 1 {
            spec.url = urls.pop();
        } else {
            spec.urls = Some(urls);
        }
        for (index, field, column) in &self.fields {
            let cell = take(*index);
            if cell.is_unset() {
                continue;
            }
            match field {
                Field::Username => spec.username = Some(text(column, cell)?),
                Field::Password => spec.password = Some(secret(cell)?),
                Field::PasswordEnv => spec.password_env = Some(text(column, cell)?),
                Field::PasswordFile => spec.password_file = Some(text(column, cell)?.into()),
                Field::Profile => spec.profile = Some(text(column, cell)?),
                Field::Enabled => spec.enabled = Some(boolean(column, cell)?),
                Field::Targets => spec.targets = Some(list(column, cell)?),
                Field::Mediamtx => spec.mediamtx = Some(object(column, cell)?),
                Field::Shard => spec.shard = Some(shard(column, cell)?),
            }
        }
        Ok(spec)
    }
}

fn wrong_type(column: &str, cell: &Cell, expected: &str) -> String {
    format!(
        "column `{column}`: expected {expected}, found {}",
        cell.kind()
    )
}

fn text(column: &str, cell: Cell) -> Result<String, String> {
    match cell {
        Cell::Text(s) => Ok(s),
        other => Err(wrong_type(column, &other, "text")),
    }
}

/// A password stored as a number is still a password; its value is never shown.
fn secret(cell: Cell) -> Result<Secret, String> {
    match cell {
        Cell::Text(s) => Ok(Secret::new(s)),
        Cell::Int(n) => Ok(Secret::new(n.to_string())),
        other => Err(wrong_type("password", &other, "text")),
    }
}

fn boolean(column: &str, cell: Cell) -> Result<bool, String> {
    let expected = "a boolean (true/false, 1/0)";
    match cell {
        Cell::Bool(b) => Ok(b),
        Cell::Int(0) => Ok(false),
        Cell::Int(1) => Ok(true),
        Cell::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "t" | "yes" => Ok(true),
            "0" | "false" | "f" | "no" => Ok(false),
            _ => Err(format!(
                "column `{column}`: expected {expected}, found text that is neither"
            )),
        },
        Cell::Int(_) => Err(format!(
            "column `{column}`: expected {expected}, found an integer other than 0 or 1"
        )),
        other => Err(wrong_type(column, &other, expected)),
    }
}

/// A shard pin: a whole number from 0.
fn shard(column: &str, cell: Cell) -> Result<u32, String> {
    let expected = "a shard number (0, 1, …)";
    match cell {
        Cell::Int(n) => {
            u32::try_from(n).map_err(|_| format!("column `{column}`: {n} is not {expected}"))
        }
        Cell::Text(s) => s.trim().parse().map_err(|_| {
            format!("column `{column}`: expected {expected}, found text that is not one")
        }),
        other => Err(wrong_type(column, &other, expected)),
    }
}

/// A comma-separated list (`go2rtc, mediamtx`) or a Postgres text array.
fn list(column: &str, cell: Cell) -> Result<Vec<String>, String> {
    let items = match cell {
        Cell::Text(s) => s.split(',').map(|t| t.trim().to_owned()).collect(),
        Cell::List(items) => items,
        other => return Err(wrong_type(column, &other, "a comma-separated list")),
    };
    Ok(items.into_iter().filter(|t| !t.is_empty()).collect())
}

/// A JSON object: Postgres `json`/`jsonb`, or text holding one.
fn object(column: &str, cell: Cell) -> Result<MediamtxFields, String> {
    let value = match cell {
        Cell::Json(value) => value,
        Cell::Text(text) => serde_json::from_str(&text).map_err(|e| {
            format!(
                "column `{column}`: not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?,
        other => return Err(wrong_type(column, &other, "a JSON object")),
    };
    match value {
        serde_json::Value::Object(fields) => Ok(fields),
        _ => Err(format!("column `{column}`: expected a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const QUERY: &str = "SELECT * FROM cameras";

    fn columns(names: &[&str]) -> Result<Columns, SourceError> {
        Columns::new("cams.db", QUERY, names.iter().copied())
    }

    fn text(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    #[test]
    fn a_missing_name_or_source_column_fails_the_whole_read_naming_column_and_query() {
        let e = columns(&["id", "url"]).unwrap_err().to_string();
        assert!(
            e.contains("`name`") && e.contains(QUERY) && e.contains("cams.db"),
            "{e}"
        );
        let e = columns(&["name", "uri"]).unwrap_err().to_string();
        assert!(e.contains("`url`") && e.contains(QUERY), "{e}");
        let e = columns(&["name", "URL", "url"]).unwrap_err().to_string();
        assert!(e.contains("two columns named `url`"), "{e}");
    }

    #[test]
    fn columns_map_by_name_case_insensitively_and_unknown_ones_are_ignored() {
        let c = columns(&[
            "Id", "NAME", "url", "codec", "username", "password", "enabled", "targets", "profile",
        ])
        .unwrap();
        assert!(!c.uses(3), "an unknown column is not even decoded");
        let record = c.record(
            2,
            vec![
                Cell::Int(17),
                text("front"),
                text("rtsp://192.0.2.1/a"),
                Cell::Blob,
                text("admin"),
                Cell::Int(1234),
                Cell::Int(0),
                text("go2rtc, mediamtx,"),
                Cell::Null,
            ],
        );
        assert_eq!(record.location, "cams.db row 2 (id 17)");
        assert_eq!(record.name.as_deref(), Some("front"));
        let spec = record.spec.unwrap();
        assert_eq!(spec.url.as_deref(), Some("rtsp://192.0.2.1/a"));
        assert_eq!(spec.password.as_ref().map(Secret::expose), Some("1234"));
        assert_eq!(spec.enabled, Some(false));
        assert_eq!(
            spec.targets,
            Some(vec!["go2rtc".to_string(), "mediamtx".to_string()])
        );
        assert_eq!(spec.profile, None, "NULL means the default");
    }

    #[test]
    fn a_shard_column_pins_the_camera_and_a_bad_one_rejects_the_row() {
        let c = columns(&["name", "url", "shard"]).unwrap();
        let row = |shard: Cell| c.record(1, vec![text("cam"), text("rtsp://192.0.2.1/a"), shard]);
        assert_eq!(row(Cell::Int(2)).spec.unwrap().shard, Some(2));
        assert_eq!(row(text("1")).spec.unwrap().shard, Some(1));
        assert_eq!(row(Cell::Null).spec.unwrap().shard, None);
        let e = row(Cell::Int(-1)).spec.unwrap_err();
        assert!(e.contains("`shard`") && e.contains("-1"), "{e}");
        let e = row(text("east")).spec.unwrap_err();
        assert!(e.contains("`shard`"), "{e}");
    }

    #[test]
    fn several_url_columns_become_sources_in_query_order_skipping_empty_ones() {
        let c = columns(&["url_main", "name", "url_backup", "url_sub"]).unwrap();
        let spec = c
            .record(
                1,
                vec![
                    text("rtsp://192.0.2.1/main"),
                    text("cam"),
                    text(""),
                    text("rtsp://192.0.2.1/sub"),
                ],
            )
            .spec
            .unwrap();
        assert_eq!(
            spec.urls,
            Some(vec![
                "rtsp://192.0.2.1/main".to_string(),
                "rtsp://192.0.2.1/sub".to_string()
            ])
        );
        let e = c
            .record(2, vec![Cell::Null, text("cam2"), text(""), Cell::Null])
            .spec
            .unwrap_err();
        assert!(
            e.contains("`url_main`") && e.contains("NULL or empty"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_column_and_never_the_value() {
        let c = columns(&["name", "url", "enabled", "password", "mediamtx", "targets"]).unwrap();
        let row = |enabled: Cell, password: Cell, mediamtx: Cell, targets: Cell| {
            c.record(
                1,
                vec![
                    text("cam"),
                    text("rtsp://192.0.2.1/a"),
                    enabled,
                    password,
                    mediamtx,
                    targets,
                ],
            )
            .spec
            .map(|_| ())
            .unwrap_err()
        };
        let e = row(text("maybe"), Cell::Null, Cell::Null, Cell::Null);
        assert!(e.contains("`enabled`") && !e.contains("maybe"), "{e}");
        let e = row(Cell::Int(2), Cell::Null, Cell::Null, Cell::Null);
        assert!(e.contains("`enabled`"), "{e}");
        let e = row(Cell::Null, Cell::Real(1.5), Cell::Null, Cell::Null);
        assert!(e.contains("`password`") && !e.contains("1.5"), "{e}");
        let e = row(Cell::Null, Cell::Null, text("{\"a\": hunter2}"), Cell::Null);
        assert!(e.contains("`mediamtx`") && !e.contains("hunter2"), "{e}");
        let e = row(Cell::Null, Cell::Null, Cell::Null, Cell::Int(3));
        assert!(e.contains("`targets`"), "{e}");
        let e = c
            .record(
                1,
                vec![
                    Cell::Int(5),
                    text("rtsp://192.0.2.1/a"),
                    Cell::Null,
                    Cell::Null,
                    Cell::Null,
                    Cell::Null,
                ],
            )
            .spec
            .map(|_| ())
            .unwrap_err();
        assert!(e.contains("column `name`: expected text"), "{e}");
    }

    #[test]
    fn json_objects_and_text_arrays_are_accepted_where_a_database_has_them() {
        let c = columns(&["name", "url", "mediamtx", "targets"]).unwrap();
        let spec = c
            .record(
                1,
                vec![
                    text("cam"),
                    text("rtsp://192.0.2.1/a"),
                    Cell::Json(serde_json::json!({"maxReaders": 4})),
                    Cell::List(vec!["go2rtc".into()]),
                ],
            )
            .spec
            .map(Arc::unwrap_or_clone)
            .unwrap();
        assert_eq!(spec.mediamtx.unwrap()["maxReaders"], 4);
        assert_eq!(spec.targets, Some(vec!["go2rtc".to_string()]));
    }

    /// Any value a database may return, its text marked so that a message quoting it shows.
    fn any_cell() -> impl Strategy<Value = Cell> {
        let marked = || "[a-z0-9 \r\n]{0,12}".prop_map(|t| format!("VALUE-{t}"));
        prop_oneof![
            Just(Cell::Null),
            any::<bool>().prop_map(Cell::Bool),
            any::<i64>().prop_map(Cell::Int),
            any::<f64>().prop_map(Cell::Real),
            marked().prop_map(Cell::Text),
            Just(Cell::Text(String::new())),
            proptest::sample::select(vec![
                "0",
                "1",
                "true",
                "no",
                "go2rtc, mediamtx",
                "{}",
                "{\"maxReaders\": 2}",
                "[1]",
                "{",
            ])
            .prop_map(|t| Cell::Text(t.into())),
            marked().prop_map(|t| Cell::Json(serde_json::json!({ "k": t }))),
            marked().prop_map(|t| Cell::Json(serde_json::json!([t]))),
            proptest::collection::vec(marked(), 0..3).prop_map(Cell::List),
            Just(Cell::Blob),
            Just(Cell::Other("tsvector".into())),
        ]
    }

    const COLUMNS: [&str; 16] = [
        "name",
        "NAME",
        "url",
        "url_sub",
        "Url_Main",
        "id",
        "username",
        "password",
        "password_env",
        "password_file",
        "profile",
        "enabled",
        "targets",
        "mediamtx",
        "shard",
        "codec",
    ];

    proptest! {
        #![proptest_config(crate::test_support::cases(1024))]

        /// Whatever columns a query returns and whatever their rows hold, each row is a record
        /// or a rejection of that row alone, and no rejection or location quotes a value.
        #[test]
        fn any_row_is_a_record_or_a_rejection_that_quotes_no_value(
            picked in proptest::collection::vec(proptest::sample::select(COLUMNS.to_vec()), 1..10),
            cells in proptest::collection::vec(any_cell(), 0..12),
        ) {
            let Ok(c) = columns(&picked) else { return Ok(()) };
            let record = c.record(7, cells);
            prop_assert!(record.location.starts_with("cams.db row 7"), "{}", record.location);
            prop_assert!(!record.location.contains(['\r', '\n']), "{}", record.location);
            if let Err(reason) = record.spec {
                prop_assert!(!reason.contains("VALUE-"), "{reason}");
                prop_assert!(!reason.contains(['\r', '\n']), "{reason}");
            }
        }

        /// A well-typed row comes out as the camera it describes, field for field.
        #[test]
        fn a_well_typed_row_is_the_camera_it_describes(
            name in "[a-z0-9_]{1,20}",
            urls in proptest::collection::vec("rtsp://127\\.0\\.0\\.1/[a-z0-9/]{0,20}", 1..4),
            username in proptest::option::of("[ -~]{1,20}"),
            password in proptest::option::of("[ -~]{1,20}"),
            enabled in proptest::option::of(any::<bool>()),
            shard in proptest::option::of(0u32..64),
            targets in proptest::option::of(proptest::collection::vec("[a-z0-9]{1,8}", 1..3)),
        ) {
            let mut names = vec!["name".to_string()];
            let mut row = vec![text(&name)];
            for (i, url) in urls.iter().enumerate() {
                names.push(if i == 0 { "url".into() } else { format!("url_{i}") });
                row.push(text(url));
            }
            let optional = |value: Option<Cell>| value.unwrap_or(Cell::Null);
            names.extend(["username", "password", "enabled", "shard", "targets"].map(String::from));
            row.push(optional(username.as_deref().map(text)));
            row.push(optional(password.as_deref().map(text)));
            row.push(optional(enabled.map(Cell::Bool)));
            row.push(optional(shard.map(|n| Cell::Int(n.into()))));
            row.push(optional(targets.as_ref().map(|t| text(&t.join(", ")))));
            let c = columns(&names.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
            let record = c.record(1, row);
            prop_assert_eq!(record.name.as_deref(), Some(name.as_str()));
            let spec = record.spec.map(Arc::unwrap_or_clone).unwrap();
            prop_assert_eq!(&spec.name, &name);
            let read_urls = spec.url.map(|u| vec![u]).or(spec.urls).unwrap();
            prop_assert_eq!(read_urls, urls);
            // An empty text is "not set", as a NULL is.
            prop_assert_eq!(spec.username, username.filter(|u| !u.is_empty()));
            prop_assert_eq!(
                spec.password.as_ref().map(|p| p.expose().to_owned()),
                password.filter(|p| !p.is_empty())
            );
            prop_assert_eq!(spec.enabled, enabled);
            prop_assert_eq!(spec.shard, shard);
            prop_assert_eq!(spec.targets, targets);
        }
    }
}
