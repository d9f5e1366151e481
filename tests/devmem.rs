//! The sysfs backend's SP memory: a plain file standing in for `/dev/mem` and a fake debugfs
//! `carveout_memories`, with RTLX running over them as it would on a board.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use vpe::elf::Endian;
use vpe::remoteproc::devmem::{pa_source, physical, DevMem};
use vpe::rproc::firmware::Profile;
use vpe::rtlx::layout::{self, Choice, Layout, Published};
use vpe::rtlx::ring::Channel;
use vpe::rtlx::{State, RTLX_ID};
use vpe::spmem::{Carveouts, Region, SpMemory};

const DA: u32 = 0x1000_0000;
const PA: u64 = 0x03f0_0000;
const INFO: u32 = DA + 0x100;

fn firmware_carveouts(da: u32) -> Carveouts {
    Carveouts::new(vec![Region {
        name: "vpe1".into(),
        da,
        len: 0x4000,
        pa: 0,
    }])
}

/// `<tmp>/debug` with remoteproc1's list, `<tmp>/sys/class/remoteproc/remoteproc1`, and a
/// 64 MiB sparse "physical memory" file.
fn board(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let debugfs = tmp.join("debug");
    let dir = debugfs.join("remoteproc/remoteproc1");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("carveout_memories"),
        format!(
            "Carveout memory entry:\n\tName: vpe1\n\tVirtual address: 00000000deadbeef\n\tDMA address: {PA:#018x}\n\tDevice address: {DA:#x}\n\tLength: 0x4000 Bytes\n\n"
        ),
    )
    .unwrap();
    let device_dir = tmp.join("sys/class/remoteproc/remoteproc1");
    fs::create_dir_all(&device_dir).unwrap();
    let mem = tmp.join("mem");
    File::create(&mem).unwrap().set_len(64 << 20).unwrap();
    (debugfs, device_dir, mem)
}

fn file_w32(f: &File, pa: u64, v: u32, e: Endian) {
    f.write_all_at(&e.u32_bytes(v), pa).unwrap();
}

#[test]
fn rtlx_over_a_fake_dev_mem_found_through_debugfs() {
    for e in [Endian::Big, Endian::Little] {
        let tmp = tempfile::tempdir().unwrap();
        let (debugfs, device_dir, mem_path) = board(tmp.path());
        let src = pa_source(Profile::MipsRproc, &debugfs, &device_dir).unwrap();
        let carveouts = physical(&firmware_carveouts(DA), &src).unwrap();
        let mem = DevMem::open(&mem_path, carveouts.clone()).unwrap();

        // The SP side, written straight into "physical memory": a 300-byte rtlx_info with
        // channel 1 set up, then published through vpe_shared at DA.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&mem_path)
            .unwrap();
        let at = |da: u32| PA + u64::from(da - DA);
        let ch = Channel {
            rt_state: State::Initialised as u32,
            buffer_size: 64,
            rt_buffer: DA + 0x1000,
            lx_buffer: DA + 0x1040,
            ..Default::default()
        };
        let ch1 = INFO + Layout::L300.channel_offset(1);
        f.write_all_at(&ch.encode(e), at(ch1)).unwrap();
        file_w32(&f, at(INFO), RTLX_ID, e);
        file_w32(&f, at(DA), INFO, e);

        assert_eq!(layout::published(&mem, DA, e).unwrap(), Published::At(INFO));
        layout::check_id(&mem, INFO, e).unwrap();
        let info = layout::decide(&mem, INFO, Choice::Auto, &carveouts, e).unwrap();
        assert_eq!(info.layout, Layout::L300);
        let site = info.site(1);
        site.set_lx_state(&mem, State::Opened as u32, e).unwrap();
        assert_eq!(site.put(&mem, &carveouts, b"ping", e).unwrap(), 4);
        let mut got = [0u8; 4];
        f.read_exact_at(&mut got, at(DA + 0x1000)).unwrap();
        assert_eq!(&got, b"ping");
        let mut word = [0u8; 4];
        f.read_exact_at(&mut word, at(ch1 + 4)).unwrap();
        assert_eq!(
            e.read_u32(word),
            State::Opened as u32,
            "lx_state in the file"
        );

        // The SP answers on the lx ring.
        f.write_all_at(b"pong", at(DA + 0x1040)).unwrap();
        file_w32(&f, at(ch1 + 24), 4, e);
        assert_eq!(site.take(&mem, &carveouts, 100, e).unwrap(), b"pong");
        f.read_exact_at(&mut word, at(ch1 + 28)).unwrap();
        assert_eq!(e.read_u32(word), 4, "lx_read advanced in the file");
    }
}

#[test]
fn nothing_outside_the_carveouts_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let (debugfs, device_dir, mem_path) = board(tmp.path());
    let src = pa_source(Profile::MipsRproc, &debugfs, &device_dir).unwrap();
    let mem = DevMem::open(&mem_path, physical(&firmware_carveouts(DA), &src).unwrap()).unwrap();
    let before = fs::read(&mem_path).unwrap();
    let err = mem.write(DA + 0x3ffe, b"four").unwrap_err().to_string();
    assert_eq!(
        err,
        "SP address 0x10003ffe + 0x4 bytes is outside every carveout (vpe1 0x10000000..0x10004000)"
    );
    let mut b = [0u8; 4];
    assert!(mem.read(DA - 4, &mut b).is_err());
    assert!(fs::read(&mem_path).unwrap() == before);
}

#[test]
fn physical_memory_the_device_cannot_give_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mem_path = tmp.path().join("mem");
    File::create(&mem_path).unwrap().set_len(0x1000).unwrap();
    let mem = DevMem::open(
        &mem_path,
        physical(
            &firmware_carveouts(DA),
            &vpe::remoteproc::devmem::PaSource::Fixed,
        )
        .unwrap(),
    )
    .unwrap();
    let mut b = [0u8; 4];
    let err = mem.read(DA, &mut b).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "read of 0x4 bytes at SP address 0x10000000 (physical 0x10000000) through {} failed:",
            mem_path.display()
        )),
        "{err}"
    );
    let err = DevMem::open(&tmp.path().join("absent"), Carveouts::default())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot open the memory device"), "{err}");
}

#[test]
fn the_fixed_profile_maps_kseg0_onto_physical_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let mem_path = tmp.path().join("mem");
    File::create(&mem_path).unwrap().set_len(4 << 20).unwrap();
    let src = pa_source(
        Profile::Fixed,
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
    )
    .unwrap();
    let mem = DevMem::open(
        &mem_path,
        physical(&firmware_carveouts(0x8020_0000), &src).unwrap(),
    )
    .unwrap();
    mem.write(0x8020_0010, b"kseg0").unwrap();
    let f = File::open(&mem_path).unwrap();
    let mut b = [0u8; 5];
    f.read_exact_at(&mut b, 0x20_0010).unwrap();
    assert_eq!(&b, b"kseg0");
}

#[test]
fn a_missing_or_incomplete_debugfs_list_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (debugfs, device_dir, _) = board(tmp.path());
    let err = pa_source(Profile::MipsRproc, &tmp.path().join("nodebug"), &device_dir)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("remoteproc/remoteproc1/carveout_memories"),
        "{err}"
    );
    assert!(err.contains("is debugfs mounted at"), "{err}");
    let src = pa_source(Profile::MipsRproc, &debugfs, &device_dir).unwrap();
    let err = physical(&firmware_carveouts(0x2000_0000), &src)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("carveout vpe1 at 0x20000000 (len 0x4000) is not in carveout_memories"),
        "{err}"
    );
}
