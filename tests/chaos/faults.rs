//! The faults the soak injects, each with its end: what an operator's site sees on a bad night.

use std::time::Duration;

use crate::proxy::Mode;
use crate::world::{Camsync, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    CameraReboot,
    CameraHang,
    Go2rtcRestart,
    MediamtxRestart,
    MediamtxFileReload,
    ApiAnswers500,
    ApiSlow,
    InventoryEdit,
    CamsyncKill,
    LedgerDiskFull,
    SourceLocked,
}

pub const KINDS: [Kind; 11] = [
    Kind::CameraReboot,
    Kind::CameraHang,
    Kind::Go2rtcRestart,
    Kind::MediamtxRestart,
    Kind::MediamtxFileReload,
    Kind::ApiAnswers500,
    Kind::ApiSlow,
    Kind::InventoryEdit,
    Kind::CamsyncKill,
    Kind::LedgerDiskFull,
    Kind::SourceLocked,
];

/// A fault in force, and what ends it.
pub enum Active {
    /// Over when it happened (a restart, a reload, an edit).
    Done,
    CamerasDown(Vec<usize>),
    CamerasHung(Vec<usize>),
    Api {
        mediamtx: bool,
    },
    CamsyncKilled,
    DiskFull,
    SourceLocked,
}

impl Active {
    /// Ends the fault. camsync is started again last, once every other fault is over.
    pub async fn end(self, world: &mut World) {
        match self {
            Active::Done => {}
            Active::CamerasDown(cameras) => {
                for i in cameras {
                    resume(world, i).await;
                }
            }
            Active::CamerasHung(cameras) => {
                for i in cameras {
                    world.cameras[i].answer();
                }
            }
            Active::Api { mediamtx } => proxy(world, mediamtx).set(Mode::Pass),
            Active::CamsyncKilled => world.camsync = Camsync::start(world.dir.path()),
            Active::DiskFull => {
                if let Ok(disk) = &world.ledger_disk {
                    disk.free();
                }
            }
            Active::SourceLocked => world.nvr.execute_batch("COMMIT").unwrap(),
        }
    }

    pub fn restarts_camsync(&self) -> bool {
        matches!(self, Active::CamsyncKilled)
    }
}

/// A camera's port can be taken by someone else's outgoing connection while it is down; that
/// is the machine, not camsync: it is tried again for a while.
async fn resume(world: &World, camera: usize) {
    for _ in 0..50 {
        if world.cameras[camera].resume().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("camera {camera}'s port stayed taken by another socket");
}

fn proxy(world: &World, mediamtx: bool) -> &crate::proxy::ApiProxy {
    if mediamtx {
        &world.mediamtx_api
    } else {
        &world.go2rtc_api
    }
}

/// Whether this machine can inject `kind`.
pub fn possible(kind: Kind, world: &World) -> bool {
    kind != Kind::LedgerDiskFull || world.ledger_disk.is_ok()
}

pub async fn inject(kind: Kind, world: &mut World, rng: &mut Rng) -> Active {
    match kind {
        Kind::CameraReboot => {
            let cameras = some_cameras(world, rng);
            for &i in &cameras {
                world.cameras[i].stop().await;
            }
            Active::CamerasDown(cameras)
        }
        Kind::CameraHang => {
            let cameras = some_cameras(world, rng);
            for &i in &cameras {
                world.cameras[i].hang();
            }
            Active::CamerasHung(cameras)
        }
        Kind::Go2rtcRestart => {
            world.go2rtc.restart().await;
            Active::Done
        }
        Kind::MediamtxRestart => {
            world.mediamtx.restart().await;
            Active::Done
        }
        Kind::MediamtxFileReload => {
            world.mediamtx.reload_file(crate::world::user_paths());
            Active::Done
        }
        Kind::ApiAnswers500 | Kind::ApiSlow => {
            let mediamtx = rng.below(2) == 1;
            let mode = if kind == Kind::ApiSlow {
                Mode::Slow
            } else {
                Mode::Failing
            };
            proxy(world, mediamtx).set(mode);
            Active::Api { mediamtx }
        }
        Kind::InventoryEdit => {
            edit(world, rng);
            Active::Done
        }
        Kind::CamsyncKill => {
            world.camsync.kill();
            Active::CamsyncKilled
        }
        Kind::LedgerDiskFull => {
            // With an edit, so that camsync has something to record while it cannot.
            if let Ok(disk) = &world.ledger_disk {
                disk.fill();
            }
            edit(world, rng);
            Active::DiskFull
        }
        Kind::SourceLocked => {
            // The NVR holds its database while it writes; its edit shows once it commits.
            world.nvr.execute_batch("BEGIN EXCLUSIVE").unwrap();
            edit(world, rng);
            Active::SourceLocked
        }
    }
}

/// One to ten of the cameras the inventory uses.
fn some_cameras(world: &World, rng: &mut Rng) -> Vec<usize> {
    let used: Vec<usize> = world.wanted.values().copied().collect();
    let mut picked: Vec<usize> = (0..1 + rng.below(10))
        .map(|_| used[rng.below(used.len())])
        .collect();
    picked.sort_unstable();
    picked.dedup();
    picked
}

/// What an NVR's user does: removes a few cameras, adds some back, or moves one to another
/// camera (a new URL). Never so many removals that the mass-deletion guard holds them back.
fn edit(world: &mut World, rng: &mut Rng) {
    let n = 1 + rng.below(5);
    match rng.below(3) {
        0 if world.removed.len() >= n => {
            let back: Vec<String> = world.removed.iter().take(n).cloned().collect();
            for name in back {
                let camera = world.spare_camera(rng.below(1000));
                world.insert(&name, camera);
            }
        }
        1 => {
            for _ in 0..n.min(3) {
                let names: Vec<String> = world.wanted.keys().cloned().collect();
                let name = &names[rng.below(names.len())];
                let camera = world.spare_camera(rng.below(1000));
                world.point(name, camera);
            }
        }
        _ => {
            for _ in 0..n {
                let names: Vec<String> = world.wanted.keys().cloned().collect();
                world.delete(&names[rng.below(names.len())]);
            }
        }
    }
}

/// xorshift64*: the soak's faults follow from its seed, printed so that a run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}
