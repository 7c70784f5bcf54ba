//! File edits shown as a unified diff, for `camsync plan`. The diff shows the file as camsync
//! would write it, so on a `mediamtx-file` with `inline_credentials` it can hold passwords:
//! changed source lines are masked before they are shown.

use similar::TextDiff;

use crate::secret::redact;
use crate::target::Preview;

pub fn unified_diff(preview: &Preview) -> String {
    if preview.before == preview.after {
        return String::new();
    }
    let path = preview.path.display().to_string();
    let diff = TextDiff::from_lines(&preview.before, &preview.after)
        .unified_diff()
        .context_radius(2)
        .header(&path, &path)
        .to_string();
    redact(&diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_only_what_changes_and_masks_passwords() {
        let preview = Preview {
            path: "mediamtx.yml".into(),
            before: "paths:\n  a:\n    source: rtsp://h/a\n".into(),
            after: "paths:\n  a:\n    source: rtsp://h/a\n  b:\n    source: rtsp://u:secret@h/b\n"
                .into(),
        };
        let diff = unified_diff(&preview);
        assert!(
            diff.starts_with("--- mediamtx.yml\n+++ mediamtx.yml\n"),
            "{diff}"
        );
        assert!(
            diff.contains("+  b:\n+    source: rtsp://u:***@h/b\n"),
            "{diff}"
        );
        assert!(!diff.contains("secret"));
        let same = Preview {
            after: preview.before.clone(),
            ..preview
        };
        assert_eq!(unified_diff(&same), "");
    }
}
