//! What go2rtc accepts of a camera, checked when the camera is validated, before anything is
//! written (SERVERS.md). A leaf: the camera model reads it, it reads nothing of camsync.

/// go2rtc's API refuses these; they only work from its YAML file.
const API_REFUSED_SCHEMES: [&str; 3] = ["exec:", "echo:", "expr:"];

/// Why go2rtc's API would refuse the source `raw`, if it would.
pub fn check_source(raw: &str) -> Result<(), String> {
    if let Some(scheme) = API_REFUSED_SCHEMES.iter().find(|s| raw.starts_with(**s)) {
        return Err(format!(
            "`{scheme}` sources are refused by go2rtc's API; keep them in go2rtc.yaml by hand"
        ));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters, which go2rtc's API rejects".into());
    }
    Ok(())
}
