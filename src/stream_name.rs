//! The rules a stream name follows on both servers: it is a camera's identity, a URL path on
//! each server and a directory or file name in MediaMTX recordings. Below everything that
//! names streams (config, profiles, cameras).

/// The longest stream name: a name becomes a URL path on both servers and a directory or file
/// name in MediaMTX recordings (at most 255 bytes on common file systems).
pub const MAX_STREAM_NAME: usize = 255;

/// Checks a name against the rules both servers share (SERVERS.md): letters, digits, `_ - .`
/// and inner `/`; no `.`/`..` segment; not a MediaMTX regexp (`~…`) or catch-all; at most
/// [`MAX_STREAM_NAME`] characters.
pub fn check_stream_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > MAX_STREAM_NAME {
        return Err("the name is longer than 255 characters");
    }
    if name == "all" || name == "all_others" {
        return Err("`all` and `all_others` are MediaMTX catch-all paths");
    }
    if name.starts_with('~') {
        return Err("names starting with `~` are MediaMTX regular expressions");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
    {
        return Err("only letters, digits, `_`, `-`, `.` and `/` are allowed");
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err("`/` may only separate segments, not start or end the name");
    }
    if name
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("empty, `.` and `..` segments are not allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_follow_both_servers_rules() {
        let longest = "n".repeat(MAX_STREAM_NAME);
        for ok in ["front_door", "site/cam-1", "a.b", "Cam9", &longest] {
            assert_eq!(check_stream_name(ok), Ok(()), "{ok}");
        }
        let too_long = format!("{longest}n");
        for bad in [
            "",
            "all",
            "all_others",
            "~re",
            "a b",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "ä",
            &too_long,
        ] {
            assert!(check_stream_name(bad).is_err(), "{bad}");
        }
    }
}
