//! The sysfs backend handing a CPU to the MIPS remoteproc driver (`--bring-up`; spec
//! `remoteproc.md` §4.2, §6.3 "Profile M bring-up"), against a fake kernel.
//!
//! The fake plays CPU hotplug (`devices/system/cpu/cpuN/online`; cpu0 has no `online`, as on
//! most systems) and the driver's `devices/mips-rproc/cpus` (a CPU list): for every CPU that
//! is in the list and offline it registers `class/remoteproc/remoteprocK` named `mips-cpuN`,
//! now or after a delay (the driver registers from a hotplug callback). Attribute reads and
//! writes go through it as [`AttrIo`], so it can return errnos; instance attributes are plain
//! files in a temp dir.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vpe::remoteproc::sysfs::{
    format_cpulist, mips_cpu_number, parse_cpulist, AttrIo, Sysfs, SysfsOptions,
};

const ENOENT: i32 = 2;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;

#[derive(Debug, Default)]
struct State {
    /// CPU → online; cpu0 is always online and has no `online` attribute.
    online: BTreeMap<u32, bool>,
    /// `None`: no MIPS remoteproc driver (no `devices/mips-rproc`).
    mask: Option<BTreeSet<u32>>,
    /// CPUs with a registered instance.
    registered: BTreeSet<u32>,
    /// Every attribute write: (path below the sysfs root, value).
    writes: Vec<(String, String)>,
    /// Refuse taking a CPU offline with this errno.
    refuse_offline: Option<i32>,
    /// Register instances this long after the `cpus` write (`None`: at once).
    register_after: Option<Duration>,
    /// The driver registers nothing (e.g. the CPU cannot be stolen).
    register_nothing: bool,
}

#[derive(Clone)]
struct Kernel {
    root: PathBuf,
    state: Arc<Mutex<State>>,
}

fn errno(n: i32) -> io::Error {
    io::Error::from_raw_os_error(n)
}

impl Kernel {
    /// CPUs 0..ncpus, all online; the driver present with an empty list if `driver`.
    fn new(root: &Path, ncpus: u32, driver: bool) -> Kernel {
        fs::create_dir_all(root.join("class/remoteproc")).unwrap();
        let state = State {
            online: (0..ncpus).map(|c| (c, true)).collect(),
            mask: driver.then(BTreeSet::new),
            ..State::default()
        };
        Kernel {
            root: root.to_path_buf(),
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn writes(&self) -> Vec<(String, String)> {
        self.lock().writes.clone()
    }

    /// `cpu` offline and listed before the test starts (its instance is the test's business).
    fn already_handed_over(&self, cpu: u32) {
        let mut st = self.lock();
        st.online.insert(cpu, false);
        st.mask.get_or_insert_with(BTreeSet::new).insert(cpu);
        st.registered.insert(cpu);
    }

    /// `class/remoteproc/remoteprocK` named `mips-cpu<cpu>`, offline (its default firmware
    /// `rproc-mips-cpuN-fw` is absent, so the auto-boot failed).
    fn register(root: &Path, cpu: u32, k: usize) {
        let dev = root.join(format!("class/remoteproc/remoteproc{k}"));
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("state"), "offline\n").unwrap();
        fs::write(dev.join("firmware"), format!("rproc-mips-cpu{cpu}-fw\n")).unwrap();
        fs::write(dev.join("recovery"), "enabled\n").unwrap();
        // `name` last: the instance is complete when it can be found.
        fs::write(dev.join("name"), format!("mips-cpu{cpu}\n")).unwrap();
    }

    /// The driver's reaction to the list: register every listed offline CPU.
    fn register_listed(&self, st: &mut State) {
        if st.register_nothing {
            return;
        }
        let Some(mask) = st.mask.clone() else { return };
        for cpu in mask {
            if st.online.get(&cpu) == Some(&false) && st.registered.insert(cpu) {
                let k = st.registered.len() - 1;
                match st.register_after {
                    None => Kernel::register(&self.root, cpu, k),
                    Some(d) => {
                        let root = self.root.clone();
                        std::thread::spawn(move || {
                            std::thread::sleep(d);
                            Kernel::register(&root, cpu, k);
                        });
                    }
                }
            }
        }
    }

    fn rel<'a>(&self, path: &'a Path) -> Option<&'a str> {
        path.strip_prefix(&self.root).ok()?.to_str()
    }

    /// `devices/system/cpu/cpuN/online` → N.
    fn online_cpu(rel: &str) -> Option<u32> {
        rel.strip_prefix("devices/system/cpu/cpu")?
            .strip_suffix("/online")?
            .parse()
            .ok()
    }
}

impl AttrIo for Kernel {
    fn read(&self, path: &Path) -> io::Result<String> {
        let rel = self.rel(path).ok_or_else(|| errno(ENOENT))?;
        let st = self.lock();
        if rel == "devices/mips-rproc/cpus" {
            let mask = st.mask.as_ref().ok_or_else(|| errno(ENOENT))?;
            let v: Vec<u32> = mask.iter().copied().collect();
            return Ok(format!("{}\n", format_cpulist(&v)));
        }
        if let Some(cpu) = Kernel::online_cpu(rel) {
            return match st.online.get(&cpu) {
                Some(&on) if cpu != 0 => Ok(if on { "1\n" } else { "0\n" }.into()),
                _ => Err(errno(ENOENT)),
            };
        }
        fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let rel = self.rel(path).ok_or_else(|| errno(ENOENT))?.to_string();
        let mut st = self.lock();
        st.writes.push((rel.clone(), value.to_string()));
        if rel == "devices/mips-rproc/cpus" {
            if st.mask.is_none() {
                return Err(errno(ENOENT));
            }
            let cpus = parse_cpulist(value).ok_or_else(|| errno(EINVAL))?;
            st.mask = Some(cpus.into_iter().collect());
            self.register_listed(&mut st);
            return Ok(());
        }
        if let Some(cpu) = Kernel::online_cpu(&rel) {
            if cpu == 0 || !st.online.contains_key(&cpu) {
                return Err(errno(ENOENT));
            }
            match value.trim_end() {
                "0" => {
                    if let Some(e) = st.refuse_offline {
                        return Err(errno(e));
                    }
                    st.online.insert(cpu, false);
                    self.register_listed(&mut st);
                }
                "1" => {
                    st.online.insert(cpu, true);
                }
                _ => return Err(errno(EINVAL)),
            }
            return Ok(());
        }
        // Instance attributes (recovery at open): plain files.
        if !path.exists() {
            return Err(errno(ENOENT));
        }
        fs::write(path, value)
    }
}

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    fwdir: PathBuf,
    kernel: Kernel,
}

impl World {
    fn new(ncpus: u32, driver: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sys");
        let fwdir = dir.path().join("firmware");
        fs::create_dir_all(&fwdir).unwrap();
        let kernel = Kernel::new(&root, ncpus, driver);
        World {
            _dir: dir,
            root,
            fwdir,
            kernel,
        }
    }

    fn opts(&self, rproc: &str, bring_up: bool) -> SysfsOptions {
        SysfsOptions {
            sysfs_root: self.root.clone(),
            firmware_dir: self.fwdir.clone(),
            bring_up,
            bring_up_timeout: Duration::from_millis(300),
            ..SysfsOptions::new(rproc)
        }
    }

    fn open(&self, rproc: &str, bring_up: bool) -> Result<Sysfs, String> {
        Sysfs::open_with_io(self.opts(rproc, bring_up), Box::new(self.kernel.clone()))
            .map_err(|e| e.to_string())
    }
}

fn w(path: &str, value: &str) -> (String, String) {
    (path.to_string(), value.to_string())
}

/// `mips-cpu1` opens with `--bring-up` and the only write is the start-up recovery policy.
fn opens_without_bring_up_writes(world: &World) {
    world.open("mips-cpu1", true).unwrap();
    assert_eq!(
        world.kernel.writes(),
        vec![w("class/remoteproc/remoteproc0/recovery", "disabled")]
    );
}

#[test]
fn bring_up_takes_the_cpu_offline_then_lists_it_for_the_driver() {
    let world = World::new(4, true);
    let s = world.open("mips-cpu1", true).unwrap();
    assert!(s.device_dir().ends_with("class/remoteproc/remoteproc0"));
    assert_eq!(
        world.kernel.writes(),
        vec![
            w("devices/system/cpu/cpu1/online", "0"),
            w("devices/mips-rproc/cpus", "1"),
            // Then the usual start-up: the legacy loader's "no recovery".
            w("class/remoteproc/remoteproc0/recovery", "disabled"),
        ]
    );
    let st = world.kernel.lock();
    assert_eq!(st.online.get(&1), Some(&false));
    assert_eq!(st.online.get(&2), Some(&true), "only CPU 1 is taken");
}

#[test]
fn bring_up_keeps_the_cpus_already_listed() {
    let world = World::new(4, true);
    world.kernel.already_handed_over(3);
    Kernel::register(&world.root, 3, 0);
    let s = world.open("mips-cpu2", true).unwrap();
    assert!(s.device_dir().ends_with("class/remoteproc/remoteproc1"));
    let writes = world.kernel.writes();
    assert_eq!(writes[0], w("devices/system/cpu/cpu2/online", "0"));
    assert_eq!(writes[1], w("devices/mips-rproc/cpus", "2-3"));
}

#[test]
fn steps_already_done_are_skipped() {
    // CPU 1 offline and listed, but its instance only appears a little later (the driver
    // registers from a hotplug callback): no write, and the open waits for it.
    let world = World::new(2, true);
    world.kernel.already_handed_over(1);
    let root = world.root.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        Kernel::register(&root, 1, 0);
    });
    opens_without_bring_up_writes(&world);
}

#[test]
fn bring_up_waits_for_a_late_registration() {
    let world = World::new(2, true);
    world.kernel.lock().register_after = Some(Duration::from_millis(80));
    let s = world.open("mips-cpu1", true).unwrap();
    assert!(s.device_dir().ends_with("remoteproc0"));
}

#[test]
fn bring_up_gives_up_when_the_driver_registers_nothing() {
    let world = World::new(2, true);
    world.kernel.lock().register_nothing = true;
    let e = world.open("mips-cpu1", true).unwrap_err();
    assert!(
        e.contains("after 300 ms") && e.contains("no remoteproc instance named \"mips-cpu1\""),
        "{e}"
    );
}

#[test]
fn without_the_driver_nothing_is_taken_offline() {
    let world = World::new(2, false);
    let e = world.open("mips-cpu1", true).unwrap_err();
    assert!(
        e.contains("devices/mips-rproc/cpus cannot be read")
            && e.contains("CONFIG_MIPS_REMOTEPROC"),
        "{e}"
    );
    assert_eq!(world.kernel.writes(), vec![], "the CPU stays with Linux");
    assert_eq!(world.kernel.lock().online.get(&1), Some(&true));
}

#[test]
fn a_refused_offline_stops_the_bring_up() {
    let world = World::new(2, true);
    world.kernel.lock().refuse_offline = Some(EBUSY);
    let e = world.open("mips-cpu1", true).unwrap_err();
    assert!(
        e.contains("cannot take CPU 1 offline") && e.contains("EBUSY"),
        "{e}"
    );
    assert_eq!(
        world.kernel.writes(),
        vec![w("devices/system/cpu/cpu1/online", "0")],
        "the list is not touched"
    );
}

#[test]
fn a_cpu_that_cannot_be_unplugged_is_reported() {
    // cpu0 has no `online` attribute; cpu5 does not exist.
    let world = World::new(2, true);
    for cpu in [0, 5] {
        let e = world.open(&format!("mips-cpu{cpu}"), true).unwrap_err();
        assert!(
            e.contains(&format!("cannot take CPU {cpu} offline"))
                && e.contains("cannot be hot-unplugged"),
            "{e}"
        );
    }
    assert_eq!(world.kernel.writes(), vec![]);
}

#[test]
fn without_bring_up_the_error_says_how() {
    let world = World::new(2, true);
    let e = world.open("mips-cpu1", false).unwrap_err();
    assert!(
        e.contains("no remoteproc instance named \"mips-cpu1\"")
            && e.contains("pass --bring-up")
            && e.contains("devices/system/cpu/cpu1/online"),
        "{e}"
    );
    assert_eq!(
        world.kernel.writes(),
        vec![],
        "nothing changed without --bring-up"
    );
    // No driver: the plain error, no hint about it.
    let world = World::new(2, false);
    let e = world.open("mips-cpu1", false).unwrap_err();
    assert!(!e.contains("--bring-up"), "{e}");
}

#[test]
fn a_registered_instance_needs_no_bring_up() {
    let world = World::new(2, true);
    Kernel::register(&world.root, 1, 0);
    opens_without_bring_up_writes(&world);
}

#[test]
fn bring_up_needs_a_mips_cpu_name() {
    let world = World::new(2, true);
    let e = world.open("dsp0", true).unwrap_err();
    assert!(e.contains("\"dsp0\" is not such a name"), "{e}");
    assert_eq!(world.kernel.writes(), vec![]);
}

#[test]
fn cpu_lists_and_names() {
    assert_eq!(parse_cpulist("\n"), Some(vec![]));
    assert_eq!(parse_cpulist("1-3,5\n"), Some(vec![1, 2, 3, 5]));
    assert_eq!(parse_cpulist("5,1,1"), Some(vec![1, 5]));
    for bad in ["1-", "a", "3-1", "1,,2", "-1", "0-100000"] {
        assert_eq!(parse_cpulist(bad), None, "{bad}");
    }
    assert_eq!(format_cpulist(&[5, 1, 2, 3]), "1-3,5");
    assert_eq!(format_cpulist(&[]), "");
    assert_eq!(format_cpulist(&[7]), "7");
    assert_eq!(mips_cpu_number("mips-cpu3"), Some(3));
    assert_eq!(mips_cpu_number("mips-cpu12"), Some(12));
    for bad in ["mips-cpu", "mips-cpu01", "mips-cpu+1", "mips-cpu1x", "cpu1"] {
        assert_eq!(mips_cpu_number(bad), None, "{bad}");
    }
}
