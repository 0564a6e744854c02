//! Hostile objects (docs/hostile-objects.md): libraries and programs made
//! by patching the bytes of compiled fixtures, each of which ld-cah must
//! refuse with one line and exit status 127, quickly (every run here is
//! killed after 10 seconds), never with a signal; and two legal but unusual
//! programs it must run exactly as glibc's loader does.
//!
//! Every case runs on x86_64 and on aarch64 (under `qemu-aarch64`), in
//! both ld-cah modes (run directly and as `PT_INTERP`). glibc's loader is
//! the reference where it refuses too; where it crashes, hangs or accepts
//! the object the test says so (`GlibcFails::NotCompared`).
//!
//! The patched files live in scratch directories under
//! `target/cah-tests/<arch>/` (`hostile_<case>-<pid>-<n>`), beside symbolic
//! links to the rest of the fixture directory, so a patched library is
//! found first with `LD_LIBRARY_PATH=<scratch>`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use cah_tests::{on_both_arches, root, run, Arch, Check, GlibcFails, Run};

/// How long a run may take: refusing is immediate, looping over a hostile
/// count is not.
const SECONDS: u64 = 10;

const DT_NULL: u64 = 0;
const DT_RELA: u64 = 7;
const DT_RELASZ: u64 = 8;
const DT_INIT: u64 = 12;
const DT_FINI: u64 = 13;
const DT_SYMTAB: u64 = 6;
const DT_STRTAB: u64 = 5;
const DT_JMPREL: u64 = 23;
const DT_PLTRELSZ: u64 = 2;
const DT_INIT_ARRAY: u64 = 25;
const DT_FINI_ARRAY: u64 = 26;
const DT_INIT_ARRAYSZ: u64 = 27;
const DT_FINI_ARRAYSZ: u64 = 28;
const DT_PREINIT_ARRAY: u64 = 32;
const DT_GNU_HASH: u64 = 0x6fff_fef5;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
const DT_VERNEEDNUM: u64 = 0x6fff_ffff;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_NOTE: u32 = 4;
const PT_TLS: u32 = 7;
const PT_GNU_RELRO: u32 = 0x6474_e552;
const SHT_DYNAMIC: u32 = 6;

/// A little-endian ELF64 file being patched.
struct Elf {
    data: Vec<u8>,
}

/// One `Elf64_Rela`, with where it is in the file.
#[derive(Clone, Copy, Debug)]
struct Rela {
    at: usize,
    offset: u64,
    kind: u32,
}

impl Elf {
    fn read(path: &Path) -> Elf {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        assert_eq!(&data[..5], b"\x7fELF\x02", "{} is not ELF64", path.display());
        Elf { data }
    }

    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.data[at..at + 2].try_into().unwrap())
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.data[at..at + 4].try_into().unwrap())
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.data[at..at + 8].try_into().unwrap())
    }
    fn put32(&mut self, at: usize, v: u32) {
        self.data[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(&mut self, at: usize, v: u64) {
        self.data[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// File offsets of the program headers.
    fn phdrs(&self) -> Vec<usize> {
        let (off, n) = (self.u64(0x20) as usize, self.u16(0x38) as usize);
        (0..n).map(|i| off + i * 56).collect()
    }

    fn phdr_of(&self, p_type: u32) -> usize {
        *self.phdrs().iter().find(|&&p| self.u32(p) == p_type).unwrap_or_else(|| panic!("no phdr of type {p_type}"))
    }

    /// The file offset of link-time address `vaddr`.
    fn offset_of(&self, vaddr: u64) -> usize {
        for p in self.phdrs().into_iter().filter(|&p| self.u32(p) == PT_LOAD) {
            let (off, va, filesz) = (self.u64(p + 8), self.u64(p + 16), self.u64(p + 32));
            if vaddr >= va && vaddr < va + filesz {
                return (off + vaddr - va) as usize;
            }
        }
        panic!("address {vaddr:#x} is not in the file");
    }

    /// The dynamic entries up to `DT_NULL`: (file offset, tag, value).
    fn dynamic(&self) -> Vec<(usize, u64, u64)> {
        let p = self.phdr_of(PT_DYNAMIC);
        let mut at = self.u64(p + 8) as usize;
        let mut out = Vec::new();
        while self.u64(at) != DT_NULL {
            out.push((at, self.u64(at), self.u64(at + 8)));
            at += 16;
        }
        out
    }

    fn dyn_val(&self, tag: u64) -> u64 {
        self.dynamic().iter().find(|e| e.1 == tag).unwrap_or_else(|| panic!("no dynamic tag {tag:#x}")).2
    }

    fn set_dyn(&mut self, tag: u64, val: u64) {
        let at = self.dynamic().iter().find(|e| e.1 == tag).unwrap_or_else(|| panic!("no dynamic tag {tag:#x}")).0;
        self.put64(at + 8, val);
    }

    /// The link-time address of the dynamic array, which is in a writable,
    /// never executable segment: where the patched pointers point.
    fn data_address(&self) -> u64 {
        self.u64(self.phdr_of(PT_DYNAMIC) + 16)
    }

    /// Every `DT_RELA` and `DT_JMPREL` entry.
    fn relocations(&self) -> Vec<Rela> {
        let tags: Vec<(u64, u64)> = self.dynamic().iter().map(|e| (e.1, e.2)).collect();
        let get = |t: u64| tags.iter().find(|e| e.0 == t).map(|e| e.1);
        let mut out = Vec::new();
        for (addr, size) in [(get(DT_RELA), get(DT_RELASZ)), (get(DT_JMPREL), get(DT_PLTRELSZ))] {
            let (Some(addr), Some(size)) = (addr, size) else { continue };
            let start = self.offset_of(addr);
            for i in 0..size as usize / 24 {
                let at = start + i * 24;
                out.push(Rela { at, offset: self.u64(at), kind: self.u64(at + 8) as u32 });
            }
        }
        out
    }

    /// The relocation that fills the word at `vaddr`.
    fn relocation_at(&self, vaddr: u64) -> Rela {
        *self.relocations().iter().find(|r| r.offset == vaddr).unwrap_or_else(|| panic!("no relocation at {vaddr:#x}"))
    }

    /// The file offset of dynamic symbol `name`.
    fn symbol(&self, name: &str) -> usize {
        let (symtab, strtab) = (self.offset_of(self.dyn_val(DT_SYMTAB)), self.offset_of(self.dyn_val(DT_STRTAB)));
        let count = if strtab > symtab { (strtab - symtab) / 24 } else { 4096 };
        for i in 1..count {
            let at = symtab + i * 24;
            let n = strtab + self.u32(at) as usize;
            let end = n + self.data[n..].iter().position(|&b| b == 0).unwrap();
            if &self.data[n..end] == name.as_bytes() {
                return at;
            }
        }
        panic!("no dynamic symbol {name}");
    }

    fn write(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
        std::fs::write(path, &self.data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// `R_*_RELATIVE` and `R_*_IRELATIVE` of `arch`.
fn relative(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => 8,
        Arch::Aarch64 => 1027,
    }
}

fn irelative(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => 37,
        Arch::Aarch64 => 1032,
    }
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// A fresh scratch directory holding symbolic links to everything in the
/// fixture directory except `replaced`, which the caller writes.
fn scratch(c: &Check, case: &str, replaced: &[&str]) -> PathBuf {
    let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
    let dir = root().join("target/cah-tests").join(c.arch.name()).join(format!("hostile_{case}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(c.dir()).unwrap().flatten() {
        let name = e.file_name();
        if replaced.iter().any(|r| name == **r) {
            continue;
        }
        std::os::unix::fs::symlink(e.path(), dir.join(&name)).unwrap();
    }
    dir
}

/// A copy of fixture library `lib`, patched by `patch`, alone in a scratch
/// directory (with links to the rest), and a run of `prog` that finds it
/// there first.
fn patched_lib(c: &Check, case: &str, prog: &str, lib: &str, patch: impl FnOnce(&mut Elf)) -> Run {
    let dir = scratch(c, case, &[lib]);
    let mut elf = Elf::read(&c.dir().join(lib));
    patch(&mut elf);
    elf.write(&dir.join(lib));
    run(prog).env("LD_LIBRARY_PATH", &dir.display().to_string()).timeout(SECONDS)
}

/// A copy of fixture program `prog`, patched by `patch`, in a scratch
/// directory beside links to the fixtures (its libraries).
fn patched_prog(c: &Check, case: &str, prog: &str, patch: impl FnOnce(&mut Elf)) -> Run {
    let dir = scratch(c, case, &[prog]);
    let mut elf = Elf::read(&c.dir().join(prog));
    patch(&mut elf);
    let path = dir.join(prog);
    elf.write(&path);
    run(&path.display().to_string()).env("LD_LIBRARY_PATH", "{dir}").timeout(SECONDS)
}

const CRASHES: GlibcFails = GlibcFails::NotCompared("glibc's loader calls the pointer and dies of a signal");

// ---------------------------------------------------------------------
// 1. Pointers the loader is given to call.

/// `DT_INIT` and `DT_FINI` pointing at data.
#[test]
fn init_and_fini_outside_the_code_are_refused() {
    on_both_arches("init_and_fini_outside_the_code_are_refused", |c| {
        for (tag, name) in [(DT_INIT, "DT_INIT"), (DT_FINI, "DT_FINI")] {
            let r = patched_lib(c, "initfn", "initorder", "libinit_d.so", |e| {
                let data = e.data_address();
                e.set_dyn(tag, data);
            });
            c.expect_refused(&r, CRASHES, &["libinit_d.so", name, "not in an executable segment"]);
        }
    });
}

/// One entry of `DT_INIT_ARRAY`, `DT_FINI_ARRAY` (a library's) and
/// `DT_PREINIT_ARRAY` (the program's) pointing at data, and one that is
/// 0: glibc calls 0 as it calls anything else (elf/dl-init.c does not skip
/// it), so ld-cah refuses it like any other address outside the code.
#[test]
fn array_entries_outside_the_code_are_refused() {
    on_both_arches("array_entries_outside_the_code_are_refused", |c| {
        let arch = c.arch;
        for (tag, name) in [(DT_INIT_ARRAY, "DT_INIT_ARRAY entry 1"), (DT_FINI_ARRAY, "DT_FINI_ARRAY entry 1")] {
            let r = patched_lib(c, "array", "initorder", "libinit_d.so", |e| {
                let slot = e.dyn_val(tag) + 8;
                let rel = e.relocation_at(slot);
                assert_eq!(rel.kind, relative(arch), "the array is relocated by R_*_RELATIVE");
                let data = e.data_address();
                e.put64(rel.at + 16, data);
            });
            c.expect_refused(&r, CRASHES, &["libinit_d.so", name, "not in an executable segment"]);
            // The same entry made 0: no relocation, a zero word.
            let r = patched_lib(c, "array0", "initorder", "libinit_d.so", |e| {
                let slot = e.dyn_val(tag) + 8;
                let rel = e.relocation_at(slot);
                e.put64(rel.at + 8, 0);
                let off = e.offset_of(slot);
                e.put64(off, 0);
            });
            c.expect_refused(&r, CRASHES, &["libinit_d.so", &format!("{name} (0x0)")]);
        }
        let r = patched_prog(c, "preinit", "initorder", |e| {
            let slot = e.dyn_val(DT_PREINIT_ARRAY);
            let rel = e.relocation_at(slot);
            let data = e.data_address();
            e.put64(rel.at + 16, data);
        });
        c.expect_refused(&r, CRASHES, &["initorder", "DT_PREINIT_ARRAY entry 0", "not in an executable segment"]);
    });
}

/// An `STT_GNU_IFUNC` symbol whose value (the resolver) is data, and an
/// `R_*_IRELATIVE` whose addend is.
#[test]
fn ifunc_resolvers_outside_the_code_are_refused() {
    on_both_arches("ifunc_resolvers_outside_the_code_are_refused", |c| {
        let arch = c.arch;
        let r = patched_lib(c, "ifunc", "ifunc", "libifunc.so", |e| {
            let sym = e.symbol("if_pick");
            let data = e.data_address();
            e.put64(sym + 8, data);
        });
        c.expect_refused(&r, CRASHES, &["libifunc.so", "STT_GNU_IFUNC resolver", "not in an executable segment"]);
        let r = patched_lib(c, "irelative", "ifunc", "libifunc.so", |e| {
            let data = e.data_address();
            let rels: Vec<Rela> = e.relocations().into_iter().filter(|r| r.kind == irelative(arch)).collect();
            assert!(!rels.is_empty(), "libifunc.so has IRELATIVE relocations");
            for r in rels {
                e.put64(r.at + 16, data);
            }
        });
        c.expect_refused(&r, CRASHES, &["libifunc.so", "IRELATIVE resolver", "not in an executable segment"]);
    });
}

/// `R_*_RELATIVE` entries whose place is not writable: the table's first
/// (written by the engine's loop over the leading run of them) and last
/// entry of that kind, aimed at the ELF header (mapped, read-only) and at
/// the top of the address space.
#[test]
fn relocations_outside_the_writable_segments_are_refused() {
    on_both_arches("relocations_outside_the_writable_segments_are_refused", |c| {
        let arch = c.arch;
        for (case, last, place, offset) in [
            ("relfirst", false, 0x40, "offset 0x40"),
            ("rellast", true, 0x40, "offset 0x40"),
            ("relfar", false, u64::MAX - 4, "lies outside"),
        ] {
            let r = patched_lib(c, case, "initorder", "libinit_d.so", |e| {
                let all = e.relocations();
                assert_eq!(all[0].kind, relative(arch), "the linker put R_*_RELATIVE entries first");
                let rels: Vec<Rela> = all.into_iter().filter(|r| r.kind == relative(arch)).collect();
                assert!(rels.len() >= 2, "libinit_d.so has R_*_RELATIVE relocations");
                let rel = if last { rels[rels.len() - 1] } else { rels[0] };
                e.put64(rel.at, place);
            });
            let glibc = GlibcFails::NotCompared("glibc's loader writes there and dies of a signal");
            c.expect_refused(&r, glibc, &["libinit_d.so", "relocation at", offset, "outside the writable segments"]);
        }
    });
}

// ---------------------------------------------------------------------
// 2. Counts larger than the bytes that hold them.

#[test]
fn hostile_sizes_are_refused_at_once() {
    on_both_arches("hostile_sizes_are_refused_at_once", |c| {
        let cases: [(&str, &str, &str, u64, u64, &str); 6] = [
            ("initorder", "libinit_d.so", "initsz", DT_INIT_ARRAYSZ, 1 << 40, "DT_INIT_ARRAYSZ"),
            ("initorder", "libinit_d.so", "finisz", DT_FINI_ARRAYSZ, 1 << 40, "DT_FINI_ARRAYSZ"),
            ("initorder", "libinit_d.so", "relasz", DT_RELASZ, 1 << 40, "DT_RELASZ"),
            ("ifunc", "libifunc.so", "pltrelsz", DT_PLTRELSZ, 1 << 40, "DT_PLTRELSZ"),
            ("ver_new", "libver.so", "verdefnum", DT_VERDEFNUM, 0xffff_ffff, "DT_VERDEFNUM"),
            // A count glibc's loader never uses (it follows the links).
            ("ver_new", "libver.so", "verdefnum2", DT_VERDEFNUM, 1 << 40, "DT_VERDEFNUM"),
        ];
        for (prog, lib, case, tag, val, word) in cases {
            let r = patched_lib(c, case, prog, lib, |e| e.set_dyn(tag, val));
            let glibc = GlibcFails::NotCompared("glibc's loader trusts the size: it crashes, or ignores it");
            c.expect_refused(&r, glibc, &[lib, word]);
        }
        // A GNU hash table of 4 billion buckets.
        let r = patched_lib(c, "nbuckets", "needsimple", "libsimple.so", |e| {
            let h = e.offset_of(e.dyn_val(DT_GNU_HASH));
            e.put32(h, u32::MAX);
        });
        c.expect_refused(&r, GlibcFails::NotCompared("glibc's loader reads past the table"), &["libsimple.so", "DT_GNU_HASH"]);
        // The program's DT_VERNEEDNUM.
        let r = patched_prog(c, "verneednum", "ver_new", |e| e.set_dyn(DT_VERNEEDNUM, 0xffff_ffff));
        c.expect_refused(
            &r,
            GlibcFails::NotCompared("glibc's loader follows vn_next and ignores the count"),
            &["ver_new", "DT_VERNEEDNUM"],
        );
    });
}

/// Segments the loader uses without further checks: the `PT_TLS` image
/// (copied into every thread's block) and `PT_GNU_RELRO` (made read-only)
/// placed far outside the object.
#[test]
fn tls_and_relro_outside_the_object_are_refused() {
    on_both_arches("tls_and_relro_outside_the_object_are_refused", |c| {
        let r = patched_lib(c, "tls", "tls_desc", "libtls_ie.so", |e| {
            let p = e.phdr_of(PT_TLS);
            e.put64(p + 16, 0x1000_0000_0000);
        });
        c.expect_refused(&r, CRASHES, &["libtls_ie.so", "PT_TLS"]);
        let r = patched_lib(c, "relro", "needsimple", "libsimple.so", |e| {
            let p = e.phdr_of(PT_GNU_RELRO);
            e.put64(p + 16, 0x1000_0000_0000);
            e.put64(p + 40, 0x20000);
        });
        c.expect_refused(&r, GlibcFails::Status(127), &["libsimple.so", "PT_GNU_RELRO"]);
    });
}

// ---------------------------------------------------------------------
// 3. Files that are not regular files.

#[test]
fn a_library_that_is_not_a_regular_file_is_refused_at_once() {
    on_both_arches("a_library_that_is_not_a_regular_file_is_refused_at_once", |c| {
        // A FIFO: opening it for reading blocks until a writer comes.
        let dir = scratch(c, "fifo", &["libsimple.so"]);
        let fifo = dir.join("libsimple.so");
        mkfifo(&fifo);
        let r = run("needsimple").env("LD_LIBRARY_PATH", &dir.display().to_string()).timeout(SECONDS);
        c.expect_refused(
            &r,
            GlibcFails::NotCompared("glibc's loader blocks in open() on a FIFO"),
            &[&fifo.display().to_string(), "not a regular file"],
        );
        // A directory, and a device (through a symbolic link).
        for (case, make) in [("dir", 0), ("dev", 1)] {
            let dir = scratch(c, case, &["libsimple.so"]);
            let lib = dir.join("libsimple.so");
            if make == 0 {
                std::fs::create_dir(&lib).unwrap();
            } else {
                std::os::unix::fs::symlink("/dev/zero", &lib).unwrap();
            }
            let r = run("needsimple").env("LD_LIBRARY_PATH", &dir.display().to_string()).timeout(SECONDS);
            c.expect_refused(&r, GlibcFails::Status(127), &[&lib.display().to_string(), "not a regular file"]);
        }
    });
}

/// `ld-cah.so FIFO`: the program itself.
#[test]
fn a_program_that_is_not_a_regular_file_is_refused_at_once() {
    on_both_arches("a_program_that_is_not_a_regular_file_is_refused_at_once", |c| {
        let dir = scratch(c, "fifoprog", &[]);
        let fifo = dir.join("prog");
        mkfifo(&fifo);
        let r = run(&fifo.display().to_string()).direct_only().timeout(SECONDS);
        c.expect_refused(&r, GlibcFails::NotCompared("glibc's loader blocks in open() on a FIFO"), &["prog", "not a regular file"]);
        let r = run(&dir.display().to_string()).direct_only().timeout(SECONDS);
        c.expect_refused(&r, GlibcFails::Status(127), &["not a regular file"]);
    });
}

fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

// ---------------------------------------------------------------------
// 4. Legal objects that must load.

/// `needsimple` with its dynamic array moved to a new segment and grown
/// to 10,000 entries (fillers of a tag no loader knows, which every loader
/// skips). The segment takes the place of the `PT_NOTE` header, which comes
/// after every `PT_LOAD`; the `.dynamic` section header follows it, so
/// `patchelf` (the `PT_INTERP` mode) sees the same file the loaders do.
#[test]
fn a_program_with_10000_dynamic_entries_runs() {
    on_both_arches("a_program_with_10000_dynamic_entries_runs", |c| {
        let r = patched_prog(c, "dyn10000", "needsimple", |e| grow_dynamic(e, 10_000));
        c.expect(&r, "libsimple says 7\n", 0);
    });
}

/// Moves the dynamic array of `e` to a new read-write `PT_LOAD` at the end
/// of the file, with fillers up to `entries` entries (`DT_NULL` included).
fn grow_dynamic(e: &mut Elf, entries: usize) {
    const FILLER: u64 = 0x6fff_f000;
    let old: Vec<(u64, u64)> = e.dynamic().iter().map(|x| (x.1, x.2)).collect();
    let mut new: Vec<(u64, u64)> = old.clone();
    new.resize(entries - 1, (FILLER, 0));
    new.push((DT_NULL, 0));
    let bytes: Vec<u8> = new.iter().flat_map(|(t, v)| t.to_le_bytes().into_iter().chain(v.to_le_bytes())).collect();
    let loads: Vec<usize> = e.phdrs().into_iter().filter(|&p| e.u32(p) == PT_LOAD).collect();
    let align = loads.iter().map(|&p| e.u64(p + 48)).max().unwrap();
    let end = loads.iter().map(|&p| e.u64(p + 16) + e.u64(p + 40)).max().unwrap();
    let off = (e.data.len() as u64 + 15) & !15;
    let vaddr = ((end + align - 1) & !(align - 1)) + off % align;
    e.data.resize(off as usize, 0);
    e.data.extend_from_slice(&bytes);
    let size = bytes.len() as u64;
    // The PT_NOTE after the last PT_LOAD becomes the new PT_LOAD.
    let last_load = *loads.last().unwrap();
    let note = *e.phdrs().iter().find(|&&p| p > last_load && e.u32(p) == PT_NOTE).expect("a PT_NOTE after the last PT_LOAD");
    for (at, v) in [(8, off), (16, vaddr), (24, vaddr), (32, size), (40, size), (48, align)] {
        e.put64(note + at, v);
    }
    e.put32(note, PT_LOAD);
    e.put32(note + 4, 6); // PF_R | PF_W
    let dynamic = e.phdr_of(PT_DYNAMIC);
    for (at, v) in [(8, off), (16, vaddr), (24, vaddr), (32, size), (40, size)] {
        e.put64(dynamic + at, v);
    }
    let (shoff, shnum) = (e.u64(0x28) as usize, e.u16(0x3c) as usize);
    for i in 0..shnum {
        let sh = shoff + i * 64;
        if e.u32(sh + 4) == SHT_DYNAMIC {
            e.put64(sh + 16, vaddr);
            e.put64(sh + 24, off);
            e.put64(sh + 32, size);
        }
    }
}

/// An unlocked program whose only note is another owner's, in a shape the
/// lock reader once took for a malformed lock: a note followed by four
/// bytes of padding (too short for a note header).
#[test]
fn an_unrelated_note_is_not_a_bad_lock() {
    on_both_arches("an_unrelated_note_is_not_a_bad_lock", |c| {
        let r = patched_prog(c, "note", "needsimple", |e| {
            let p = e.phdr_of(PT_NOTE);
            let (off, size) = (e.u64(p + 8) as usize, e.u64(p + 32) as usize);
            let mut note = Vec::new();
            note.extend_from_slice(&4u32.to_le_bytes());
            note.extend_from_slice(&((size - 20) as u32).to_le_bytes());
            note.extend_from_slice(&0x100u32.to_le_bytes());
            note.extend_from_slice(b"XYZ\0");
            note.resize(size - 4, 0x5a);
            note.resize(size, 0);
            e.data[off..off + size].copy_from_slice(&note);
        });
        c.expect(&r, "libsimple says 7\n", 0);
    });
}
