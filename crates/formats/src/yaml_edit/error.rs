//! Why a YAML edit is refused.

/// Why a file cannot be read or an edit cannot be made safely. Lines are 1-based. Messages
/// name sections, keys and lines but never quote values (they may hold passwords).
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The text is not one YAML document serde-saphyr accepts (syntax, duplicate keys, …).
    #[error("not valid YAML (line {line}): {message}")]
    NotYaml { line: usize, message: String },
    #[error("cannot edit this file (line {line}): {reason}")]
    UnsupportedFile { line: usize, reason: &'static str },
    #[error("the top level of the file is not a mapping (line {line})")]
    TopLevelNotMapping { line: usize },
    #[error("`{section}` is not a mapping (line {line})")]
    SectionNotMapping { section: String, line: usize },
    /// Editing the section would also change what an alias elsewhere reads.
    #[error("`{section}` is an alias or is aliased elsewhere (line {line})")]
    SharedSection { section: String, line: usize },
    #[error("`{section}.{key}` is written with an alias key (line {line})")]
    AliasKey {
        section: String,
        key: String,
        line: usize,
    },
    #[error("`{section}.{key}` comes from the merge key at line {line}")]
    MergedKey {
        section: String,
        key: String,
        line: usize,
    },
    #[error("`{section}.{key}` defines an anchor (line {line}) that is used at line {used_at}")]
    AnchorInUse {
        section: String,
        key: String,
        line: usize,
        used_at: usize,
    },
    #[error("cannot edit `{section}` safely (line {line}): {reason}")]
    Unsupported {
        section: String,
        line: usize,
        reason: &'static str,
    },
    /// The edited text did not read back as intended; the document was left unchanged.
    /// `keys` lists the keys of the edit, comma-separated.
    #[error("editing `{section}` ({keys}) would not give the intended file: {detail}")]
    Unverified {
        section: String,
        keys: String,
        detail: String,
    },
}
