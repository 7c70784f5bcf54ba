//! Turns the environment variables that point tests at external servers into cfgs, so a test
//! that needs one is `#[cfg_attr(not(camsync_go2rtc), ignore = "…")]`: without the server it
//! is reported as ignored, with its reason, instead of passing without running.

/// (environment variable, cfg set when it is non-empty)
const GATES: [(&str, &str); 7] = [
    ("CAMSYNC_GO2RTC_BIN", "camsync_go2rtc"),
    ("CAMSYNC_MEDIAMTX_BIN", "camsync_mediamtx"),
    ("CAMSYNC_TEST_POSTGRES", "camsync_postgres"),
    ("CAMSYNC_TEST_POSTGRES_CTL", "camsync_postgres_ctl"),
    // The status page's browser tests: ChromeDriver (it finds Chromium itself, or
    // CAMSYNC_CHROMIUM), geckodriver (it finds Firefox), and axe-core's `axe.min.js` for the
    // accessibility check.
    ("CAMSYNC_CHROMEDRIVER", "camsync_browser"),
    ("CAMSYNC_GECKODRIVER", "camsync_firefox"),
    ("CAMSYNC_AXE_JS", "camsync_axe"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for (var, cfg) in GATES {
        println!("cargo:rustc-check-cfg=cfg({cfg})");
        println!("cargo:rerun-if-env-changed={var}");
        if std::env::var_os(var).is_some_and(|value| !value.is_empty()) {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}
