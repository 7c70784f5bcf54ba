//! One scenario suite, two backends: each behaviour of go2rtc and MediaMTX that camsync relies
//! on (SERVERS.md) is written once, as a function of a [`backend`], and run against the
//! simulator always and against the real server when its binary is given
//! (`CAMSYNC_GO2RTC_BIN`, `CAMSYNC_MEDIAMTX_BIN`; without it the real half is reported as
//! ignored). Both must give the same observable answers; a difference fails the test named
//! `<scenario>::sim` or `<scenario>::real` with the call and both answers. Where they
//! disagreed, the real server won (CONFORMANCE-NOTES.md).

#[path = "../common/player.rs"]
mod player;
#[path = "../common/real.rs"]
mod real;

mod backend;
mod go2rtc;
mod mediamtx;
mod wire;

/// `conformance!(go2rtc, scenario)`: the tests `scenario::sim` and `scenario::real` (gated on
/// the server's binary) running the scenario against each backend.
/// `conformance!(mediamtx, scenario, sim: expr, real: expr)`: the same with backends set up
/// for it (each expression a future of the backend).
macro_rules! conformance {
    (mediamtx, $scenario:ident, sim: $sim:expr, real: $real:expr $(,)?) => {
        conformance!(@with camsync_mediamtx, "set CAMSYNC_MEDIAMTX_BIN to a MediaMTX binary",
            $scenario, $sim, $real);
    };
    (go2rtc, $($scenario:ident),+ $(,)?) => {
        $(conformance!(@one crate::backend::Go2rtc, camsync_go2rtc,
            "set CAMSYNC_GO2RTC_BIN to a go2rtc binary", $scenario);)+
    };
    (mediamtx, $($scenario:ident),+ $(,)?) => {
        $(conformance!(@one crate::backend::Mediamtx, camsync_mediamtx,
            "set CAMSYNC_MEDIAMTX_BIN to a MediaMTX binary", $scenario);)+
    };
    (@one $backend:ty, $cfg:ident, $why:literal, $scenario:ident) => {
        conformance!(@with $cfg, $why, $scenario, <$backend>::sim(), <$backend>::real());
    };
    (@with $cfg:ident, $why:literal, $scenario:ident, $sim:expr, $real:expr) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sim() {
                super::$scenario($sim.await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not($cfg), ignore = $why)]
            async fn real() {
                super::$scenario($real.await).await;
            }
        }
    };
}
pub(crate) use conformance;
