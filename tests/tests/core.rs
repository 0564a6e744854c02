//! The loader core, end to end: start-up hand-over, every relocation kind,
//! TLS models, symbol lookup rules, initialisation and finalisation order.
//! Each fixture's expected output is written from what its source prints
//! (tests/fixtures/); see tests/src/lib.rs for the modes each runs in.

use cah_tests::{on_both_arches, run, GlibcFails};

#[test]
fn program_without_dependencies() {
    on_both_arches("program_without_dependencies", |c| {
        c.expect(&run("hello"), "hello from a program without libc\n", 0);
    });
}

/// argc, argv, the environment and the auxiliary vector reach the program
/// intact, and the auxv describes the program, not the loader.
#[test]
fn arguments_environment_auxv() {
    on_both_arches("arguments_environment_auxv", |c| {
        let r = run("args").args(&["one", "two words", ""]).env("CAH_TEST_VAR", "some value");
        c.expect(
            &r,
            "argc=4\n\
             argv[0]={prog}\n\
             argv[1]=one\n\
             argv[2]=two words\n\
             argv[3]=\n\
             argv[argc] is null: yes\n\
             env CAH_TEST_VAR=some value\n\
             envp follows argv: yes\n\
             CAH_TEST_VAR=some value\n\
             AT_PHNUM is the program's e_phnum: yes\n\
             AT_PHDR is the program's header table: yes\n\
             AT_ENTRY is the program's _start: yes\n\
             AT_ENTRY is e_entry + load bias: yes\n\
             AT_PAGESZ is a power of two >= 4096: yes\n\
             AT_RANDOM is set: yes\n\
             AT_SECURE=0\n\
             AT_EXECFN={prog}\n",
            42,
        );
    });
}

#[test]
fn empty_environment_and_no_arguments() {
    on_both_arches("empty_environment_and_no_arguments", |c| {
        c.expect(
            &run("args"),
            "argc=1\n\
             argv[0]={prog}\n\
             argv[argc] is null: yes\n\
             envp follows argv: yes\n\
             CAH_TEST_VAR=(unset)\n\
             AT_PHNUM is the program's e_phnum: yes\n\
             AT_PHDR is the program's header table: yes\n\
             AT_ENTRY is the program's _start: yes\n\
             AT_ENTRY is e_entry + load bias: yes\n\
             AT_PAGESZ is a power of two >= 4096: yes\n\
             AT_RANDOM is set: yes\n\
             AT_SECURE=0\n\
             AT_EXECFN={prog}\n",
            42,
        );
    });
}

/// `--argv0 NAME` replaces argv[0] only; AT_EXECFN stays the program's
/// path (as glibc does it).
#[test]
fn argv0_option() {
    on_both_arches("argv0_option", |c| {
        let r = run("args").opts(&["--argv0", "renamed-program"]).args(&["x"]).env("CAH_TEST_VAR", "v");
        c.expect(
            &r,
            "argc=2\n\
             argv[0]=renamed-program\n\
             argv[1]=x\n\
             argv[argc] is null: yes\n\
             env CAH_TEST_VAR=v\n\
             envp follows argv: yes\n\
             CAH_TEST_VAR=v\n\
             AT_PHNUM is the program's e_phnum: yes\n\
             AT_PHDR is the program's header table: yes\n\
             AT_ENTRY is the program's _start: yes\n\
             AT_ENTRY is e_entry + load bias: yes\n\
             AT_PAGESZ is a power of two >= 4096: yes\n\
             AT_RANDOM is set: yes\n\
             AT_SECURE=0\n\
             AT_EXECFN={prog}\n",
            42,
        );
    });
}

/// A static (ET_EXEC, no PT_INTERP, no PT_DYNAMIC) program given to the
/// loader on its command line runs as the kernel would run it.
#[test]
fn static_program_run_directly() {
    on_both_arches("static_program_run_directly", |c| {
        let r = run("static").no_interp().args(&["a", "b"]);
        c.expect(&r, "static program: argc=3\narg a\narg b\n", 7);
    });
}

#[test]
fn static_pie_program_run_directly() {
    on_both_arches("static_pie_program_run_directly", |c| {
        let r = run("static_pie").no_interp().args(&["a"]);
        c.expect(&r, "static program: argc=2\narg a\n", 7);
    });
}

const RELOC_OUT: &str = "\
ra_value=1234
ra_array[1]=20
*ra_hidden_ptr=99
*rb_ptr=1234
*rb_elem=30
rb_fn(2, 3)=5
exe_fn_ptr(4, 5)=9
ra_add(6, 7)=13
rb_sum()=1274
ra_word(1)=beta
local_words[2]=three
ra_add has one address in all objects: yes
ra_value has one address in all objects: yes
after a write through rb_ptr: ra_value=555, libreloc_a reads 555
";

/// RELATIVE, GLOB_DAT, JUMP_SLOT, absolute 64-bit pointers with and
/// without addend, and (x86_64 PIE) COPY, across three objects; lazy.
#[test]
fn relocations_lazy_binding() {
    on_both_arches("relocations_lazy_binding", |c| {
        c.expect(&run("reloc").lib_path(), RELOC_OUT, 0);
    });
}

#[test]
fn relocations_bind_now() {
    on_both_arches("relocations_bind_now", |c| {
        c.expect(&run("reloc_now").lib_path(), RELOC_OUT, 0);
    });
}

#[test]
fn relocations_ld_bind_now() {
    on_both_arches("relocations_ld_bind_now", |c| {
        c.expect(&run("reloc").lib_path().env("LD_BIND_NOW", "1"), RELOC_OUT, 0);
    });
}

/// DT_RELR in a library and in the program.
#[test]
fn relr_relocations() {
    on_both_arches("relr_relocations", |c| {
        for f in ["relr", "librelr.so"] {
            let path = c.dir().join(f);
            match cah_tests::elf::dynamic_tags(&path) {
                Ok(tags) if tags.iter().any(|&(t, _)| t == cah_tests::elf::DT_RELR) => {}
                Ok(_) => c.fail(format!(
                    "{} has no DT_RELR, so this test proves nothing for this arch; GNU ld 2.40 \
                     cannot make one for aarch64: install lld (Debian package `lld`) and run \
                     `cargo xtask fixtures`",
                    path.display()
                )),
                Err(e) => c.fail(format!("{}: {e}", path.display())),
            }
        }
        c.expect(
            &run("relr").lib_path(),
            "relr_count=70\n\
             relr names: r00 r07 r14 r21 r28 r35 r42 r49 r56 r63\n\
             relr_spaced_sum=7\n\
             exe names: e0 e5 e10 e15\n",
            0,
        );
    });
}

const COPY_OUT: &str = "\
copy_int=1234
copy_buf=initial contents of copy_buf
copy_pair={11, 22}
copy_str_ptr=pointer copied with its target
library uses the program's objects: yes
after copy_bump: copy_int=1235 copy_pair.b=122
";

/// COPY relocations from an ET_EXEC program; the library must then bind
/// its own references to the program's copies.
#[test]
fn copy_relocations_non_pie() {
    on_both_arches("copy_relocations_non_pie", |c| {
        c.expect(&run("copyreloc").lib_path(), COPY_OUT, 0);
    });
}

/// The same from a PIE (x86_64: still COPY; aarch64: GLOB_DAT).
#[test]
fn copy_relocations_pie() {
    on_both_arches("copy_relocations_pie", |c| {
        c.expect(&run("copyreloc_pie").lib_path(), COPY_OUT, 0);
    });
}

/// IRELATIVE in a library and in the program, and symbol references
/// (JUMP_SLOT, GLOB_DAT) to a library's STT_GNU_IFUNC.
#[test]
fn ifunc_and_irelative() {
    on_both_arches("ifunc_and_irelative", |c| {
        c.expect(
            &run("ifunc").lib_path(),
            "if_pick()=2\n\
             if_call_hidden()=40\n\
             exe_ifunc()=300\n\
             exe_ifunc_ptr()=300\n\
             &if_pick is the resolved function in the program and the library: yes\n",
            0,
        );
    });
}

/// Lookups through a DT_GNU_HASH-only and a DT_HASH-only library.
#[test]
fn gnu_and_sysv_hash_tables() {
    on_both_arches("gnu_and_sysv_hash_tables", |c| {
        c.expect(&run("hashstyle").lib_path(), "gnu: 7 10 19 100 150 299\nsysv: 8 11 123 200 255 298\n", 0);
    });
}

const TLS_OUT: &str = "\
exe_tls=4444
exe_tbss is zero: yes
exe_aligned=7, 32-aligned: yes
tie_var=1111 tie_static=1212
tie_zero is zero: yes
tie_var has one address (program IE, libtls_ie IE, libtls_dyn dynamic): yes
libtls_dyn reads tie_var=5555
tdyn_var=2222, one address: yes
tdyn_local_sum=6767
after set: tdyn_local_sum=3534
tdyn_big zero and 64-aligned: yes
the blocks do not overlap: yes
";

/// Local-exec and initial-exec in the program, initial-exec in a library,
/// and general/local-dynamic through TLS descriptors (x86_64 gnu2,
/// aarch64's default). No libc.
#[test]
fn tls_descriptors() {
    on_both_arches("tls_descriptors", |c| {
        c.expect(&run("tls_desc").lib_path(), TLS_OUT, 0);
    });
}

/// The same with general/local-dynamic through `__tls_get_addr`
/// (DTPMOD64/DTPOFF64). `__tls_get_addr` lives in ld.so, so the library
/// needs ld-linux-*.so (which ld-cah answers to itself), and the program is
/// of the libc flavour (see tests/fixtures/shim/start.c).
#[test]
fn tls_get_addr() {
    on_both_arches("tls_get_addr", |c| {
        c.expect(&run("tls_gd").lib_path(), TLS_OUT, 0);
    });
}

/// `__tls_get_addr` from ld-linux-*.so (which ld-cah answers to itself)
/// WITHOUT libc.so.6 in the closure: isolates ld-cah's TLS from its glibc
/// stand-in. glibc 2.36 cannot run this program: with ld.so in the closure
/// and no libc it fails looking up calloc and pthread_mutex_lock in libc.
#[test]
fn tls_get_addr_without_libc() {
    on_both_arches("tls_get_addr_without_libc", |c| {
        c.expect_cah_only(
            &run("tls_gd_bare").lib_path(),
            TLS_OUT,
            0,
            "glibc: undefined symbol: calloc, version GLIBC_2.2.5 (no libc.so.6)",
        );
    });
}

#[test]
fn symbol_versions_default() {
    on_both_arches("symbol_versions_default", |c| {
        c.expect(&run("ver_new").lib_path(), "vfn()=2 vonly1()=10\n", 0);
    });
}

#[test]
fn symbol_versions_old_non_default() {
    on_both_arches("symbol_versions_old_non_default", |c| {
        c.expect(&run("ver_old").lib_path(), "vfn()=1 vonly1()=10\n", 0);
    });
}

/// An unversioned reference to a symbol the library defines in several
/// versions binds to the OLDEST one (glibc: version index 2, even though it
/// is hidden), not to the default.
#[test]
fn symbol_versions_unversioned_reference() {
    on_both_arches("symbol_versions_unversioned_reference", |c| {
        c.expect(&run("ver_unversioned").lib_path(), "vfn()=1 vonly1()=10\n", 0);
    });
}

/// A needed version the library does not define: glibc exits with 1 (not
/// 127) after "version `VER_3' not found"; ld-cah's contract is 127.
#[test]
fn symbol_versions_missing_version() {
    on_both_arches("symbol_versions_missing_version", |c| {
        c.expect_refused(&run("ver_missing").lib_path(), GlibcFails::Status(1), &["VER_3"]);
    });
}

/// The program's definition wins over every library's, also for a
/// library's calls to its own symbol; then DT_NEEDED order; a weak
/// definition found first wins over a later strong one.
#[test]
fn interposition() {
    on_both_arches("interposition", |c| {
        c.expect(
            &run("interpose").lib_path(),
            "exe: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=liba who_pre2=liba\n\
             libb: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=liba\n",
            0,
        );
    });
}

#[test]
fn weak_and_undefined_weak_symbols() {
    on_both_arches("weak_and_undefined_weak_symbols", |c| {
        c.expect(
            &run("weak").lib_path(),
            "undef_weak_fn: null\n\
             &undef_weak_var: null\n\
             weak_var_ptr: null, weak_fn_ptr: null\n\
             exe_hook: defined, returns 77\n",
            0,
        );
    });
}

#[test]
fn protected_symbols() {
    on_both_arches("protected_symbols", |c| {
        c.expect(&run("prot").lib_path(), "exe prot_fn()=2\nlibprot prot_call()=1100\nprot_other()=5, one address: yes\n", 0);
    });
}

#[test]
fn gnu_unique_symbols() {
    on_both_arches("gnu_unique_symbols", |c| {
        c.expect(&run("uniq").lib_path(), "uniq_obj=1, one address: yes\n", 0);
    });
}

const INIT_OUT: &str = "\
exe: preinit 1 argc=3 argv[1]=first CAH_TEST_VAR=init
exe: preinit 2
d: DT_INIT argc=3 argv[1]=first CAH_TEST_VAR=init
d: constructor 1 argc=3 argv[1]=first CAH_TEST_VAR=init
d: constructor 2
c: DT_INIT argc=3 argv[1]=first CAH_TEST_VAR=init
c: constructor 1 argc=3 argv[1]=first CAH_TEST_VAR=init
  c sees d initialised: yes
c: constructor 2
b: DT_INIT argc=3 argv[1]=first CAH_TEST_VAR=init
b: constructor 1 argc=3 argv[1]=first CAH_TEST_VAR=init
  b sees c initialised: yes
  b sees d initialised: yes
b: constructor 2
a: DT_INIT argc=3 argv[1]=first CAH_TEST_VAR=init
a: constructor 1 argc=3 argv[1]=first CAH_TEST_VAR=init
  a sees d initialised: yes
a: constructor 2
exe: constructor (run by the program's _start) argc=3 a=1 b=1
exe: main
";

/// The program's DT_PREINIT_ARRAY, then every library's DT_INIT and
/// DT_INIT_ARRAY, dependencies first, in glibc's order for this graph
/// (program needs a, b; a needs d; b needs c, d; c needs d): d c b a. The
/// program's own DT_INIT is not the loader's to run.
#[test]
fn init_order() {
    on_both_arches("init_order", |c| {
        let r = run("initorder").lib_path().env("CAH_TEST_VAR", "init").args(&["first", "second"]);
        c.expect(&r, INIT_OUT, 0);
    });
}

/// The same program with libc.so.6 in its closure, calling the loader's
/// fini function at exit: the program's DT_FINI_ARRAY and DT_FINI first,
/// then the libraries in the reverse of their init order (each
/// DT_FINI_ARRAY backwards, then DT_FINI).
#[test]
fn init_and_fini_order() {
    on_both_arches("init_and_fini_order", |c| {
        let r = run("initfini").lib_path().env("CAH_TEST_VAR", "init").args(&["first", "second"]);
        c.expect(&r, &init_fini_out(), 0);
    });
}

fn init_fini_out() -> String {
    format!(
        "{INIT_OUT}\
         exe: destructor\n\
         exe: DT_FINI\n\
         a: destructor 2\n\
         a: destructor 1\n\
         a: DT_FINI\n\
         b: destructor 2\n\
         b: destructor 1\n\
         b: DT_FINI\n\
         c: destructor 2\n\
         c: destructor 1\n\
         c: DT_FINI\n\
         d: destructor 2\n\
         d: destructor 1\n\
         d: DT_FINI\n"
    )
}

/// The same fini order without libc.so.6 in the closure, which glibc 2.36
/// cannot do (its _dl_fini asserts when ld.so is not in the closure).
#[test]
fn init_and_fini_order_without_libc() {
    on_both_arches("init_and_fini_order_without_libc", |c| {
        let r = run("initfini_bare").lib_path().env("CAH_TEST_VAR", "init").args(&["first", "second"]);
        c.expect_cah_only(&r, &init_fini_out(), 0, "glibc: _dl_fini: Assertion `ns != LM_ID_BASE || i == nloaded' failed");
    });
}

/// libcyca needs libcycb needs libcyca: loads, and glibc initialises
/// libcyca first (before the dependency it is itself a dependency of).
#[test]
fn dependency_cycle() {
    on_both_arches("dependency_cycle", |c| {
        let r = run("cycle").lib_path().env("CAH_TEST_VAR", "cyc");
        c.expect(
            &r,
            "cyca: DT_INIT argc=1 argv[1]=- CAH_TEST_VAR=cyc\n\
             cyca: constructor 1 argc=1 argv[1]=- CAH_TEST_VAR=cyc\n\
             \x20 cyca sees cycb initialised: no\n\
             cyca: constructor 2\n\
             cycb: DT_INIT argc=1 argv[1]=- CAH_TEST_VAR=cyc\n\
             cycb: constructor 1 argc=1 argv[1]=- CAH_TEST_VAR=cyc\n\
             \x20 cycb sees cyca initialised: yes\n\
             cycb: constructor 2\n\
             exe: main cyca=1\n",
            0,
        );
    });
}

/// With lazy binding, a PLT slot whose symbol exists nowhere is no error
/// until it is called (and this program never calls it).
#[test]
fn lazy_unresolved_function_never_called() {
    on_both_arches("lazy_unresolved_function_never_called", |c| {
        c.expect(&run("missing_lazy").lib_path(), "lazy: libsimple\nlazy: the unresolved function was never called\n", 0);
    });
}

/// The same program with LD_BIND_NOW=1 is refused at start-up.
#[test]
fn lazy_unresolved_function_with_ld_bind_now() {
    on_both_arches("lazy_unresolved_function_with_ld_bind_now", |c| {
        let r = run("missing_lazy").lib_path().env("LD_BIND_NOW", "1");
        c.expect_refused(&r, GlibcFails::Status(127), &["simple_gone_fn"]);
    });
}
