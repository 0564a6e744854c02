//! Finding libraries: --library-path and LD_LIBRARY_PATH, DT_RPATH and
//! DT_RUNPATH with $ORIGIN and their precedence, LD_PRELOAD and --preload.

use cah_tests::{on_both_arches, run, GlibcFails};

const SIMPLE_OUT: &str = "libsimple says 7\n";

#[test]
fn ld_library_path() {
    on_both_arches("ld_library_path", |c| {
        c.expect(&run("needsimple").env("LD_LIBRARY_PATH", "{dir}"), SIMPLE_OUT, 0);
    });
}

/// Several directories, the first ones without the library.
#[test]
fn ld_library_path_list() {
    on_both_arches("ld_library_path_list", |c| {
        let r = run("needsimple").env("LD_LIBRARY_PATH", "{dir}/o_a:/nonexistent::{dir}/o_b:{dir}");
        c.expect(&r, SIMPLE_OUT, 0);
    });
}

#[test]
fn library_path_option() {
    on_both_arches("library_path_option", |c| {
        c.expect(&run("needsimple").opts(&["--library-path", "{dir}"]), SIMPLE_OUT, 0);
    });
}

#[test]
fn inhibit_cache_option() {
    on_both_arches("inhibit_cache_option", |c| {
        let r = run("needsimple").opts(&["--inhibit-cache", "--library-path", "{dir}"]);
        c.expect(&r, SIMPLE_OUT, 0);
    });
}

/// `--library-path` replaces LD_LIBRARY_PATH, it does not add to it.
#[test]
fn library_path_option_overrides_ld_library_path() {
    on_both_arches("library_path_option_overrides_ld_library_path", |c| {
        let r = run("who_plain").opts(&["--library-path", "{dir}/o_a"]).env("LD_LIBRARY_PATH", "{dir}/o_b");
        c.expect(&r, "libwho.so from o_a\n", 0);
    });
}

/// $ORIGIN is expanded in LD_LIBRARY_PATH too (outside secure mode).
#[test]
fn origin_in_ld_library_path() {
    on_both_arches("origin_in_ld_library_path", |c| {
        c.expect(&run("who_plain").env("LD_LIBRARY_PATH", "$ORIGIN/o_b"), "libwho.so from o_b\n", 0);
    });
}

/// DT_RPATH with $ORIGIN; the program's DT_RPATH also serves its
/// libraries' dependencies (libo1 finds libo2 through it).
#[test]
fn rpath_origin_serves_indirect_dependencies() {
    on_both_arches("rpath_origin_serves_indirect_dependencies", |c| {
        c.expect(&run("origin_rpath"), "libo1 needs libo2: libo2\nfound libo1\n", 0);
    });
}

/// DT_RUNPATH with $ORIGIN, in the program and in a library
/// ($ORIGIN/../o_run2 relative to the library's own directory).
#[test]
fn runpath_origin() {
    on_both_arches("runpath_origin", |c| {
        c.expect(&run("origin_runpath"), "libo3 needs libo4: libo4\nfound libo3\n", 0);
    });
}

/// A program's DT_RUNPATH is for its own DT_NEEDED only: libo1's libo2 is
/// not found through it.
#[test]
fn runpath_does_not_serve_indirect_dependencies() {
    on_both_arches("runpath_does_not_serve_indirect_dependencies", |c| {
        c.expect_refused(&run("origin_runpath_indirect"), GlibcFails::Status(127), &["libo2.so"]);
    });
}

/// `${ORIGIN}` is the same as `$ORIGIN`.
#[test]
fn origin_in_braces() {
    on_both_arches("origin_in_braces", |c| {
        c.expect(&run("who_brace"), "libwho.so from o_b\n", 0);
    });
}

/// DT_RPATH comes before LD_LIBRARY_PATH.
#[test]
fn rpath_before_ld_library_path() {
    on_both_arches("rpath_before_ld_library_path", |c| {
        c.expect(&run("who_rpath").env("LD_LIBRARY_PATH", "{dir}/o_b"), "libwho.so from o_a\n", 0);
    });
}

/// LD_LIBRARY_PATH comes before DT_RUNPATH.
#[test]
fn ld_library_path_before_runpath() {
    on_both_arches("ld_library_path_before_runpath", |c| {
        c.expect(&run("who_runpath").env("LD_LIBRARY_PATH", "{dir}/o_b"), "libwho.so from o_b\n", 0);
        c.expect(&run("who_runpath"), "libwho.so from o_a\n", 0);
    });
}

const NO_PRELOAD: &str = "\
exe: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=liba who_pre2=liba
libb: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=liba
";

/// A preloaded library comes after the program (which keeps who_all) and
/// before every DT_NEEDED library (so it wins who_pre, for libint_b too).
const PRELOAD_PRE: &str = "\
exe: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=libpre who_pre2=liba
libb: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=libpre
";

#[test]
fn ld_preload_path() {
    on_both_arches("ld_preload_path", |c| {
        c.expect(&run("interpose").lib_path().env("LD_PRELOAD", "{dir}/libpre.so"), PRELOAD_PRE, 0);
    });
}

/// A preload name without a slash is searched like a dependency.
#[test]
fn ld_preload_name() {
    on_both_arches("ld_preload_name", |c| {
        c.expect(&run("interpose").lib_path().env("LD_PRELOAD", "libpre.so"), PRELOAD_PRE, 0);
    });
}

/// Several preloads keep their order; space and colon both separate.
#[test]
fn ld_preload_list_order() {
    on_both_arches("ld_preload_list_order", |c| {
        c.expect(
            &run("interpose").lib_path().env("LD_PRELOAD", "libpre2.so libpre.so"),
            "exe: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=libpre2 who_pre2=libpre2\n\
             libb: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=libpre2\n",
            0,
        );
        c.expect(
            &run("interpose").lib_path().env("LD_PRELOAD", "libpre.so:libpre2.so"),
            "exe: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=libpre who_pre2=libpre2\n\
             libb: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=libpre\n",
            0,
        );
    });
}

/// A preload that cannot be found is reported and ignored: the program
/// still runs (glibc: "ERROR: ld.so: object ... cannot be preloaded ...:
/// ignored." on stderr). Only stdout and the status are compared.
#[test]
fn ld_preload_missing_is_ignored() {
    on_both_arches("ld_preload_missing_is_ignored", |c| {
        c.expect(&run("interpose").lib_path().env("LD_PRELOAD", "libnothere.so"), NO_PRELOAD, 0);
    });
}

#[test]
fn preload_option() {
    on_both_arches("preload_option", |c| {
        let r = run("interpose").opts(&["--library-path", "{dir}", "--preload", "libpre.so"]);
        c.expect(&r, PRELOAD_PRE, 0);
        let r = run("interpose").opts(&["--library-path", "{dir}", "--preload", "{dir}/libpre2.so:libpre.so"]);
        c.expect(
            &r,
            "exe: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=libpre2 who_pre2=libpre2\n\
             libb: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=libpre2\n",
            0,
        );
    });
}

/// LD_PRELOAD's libraries come before --preload's.
#[test]
fn ld_preload_before_preload_option() {
    on_both_arches("ld_preload_before_preload_option", |c| {
        let r = run("interpose").opts(&["--library-path", "{dir}", "--preload", "libpre2.so"]).env("LD_PRELOAD", "libpre.so");
        c.expect(
            &r,
            "exe: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=libpre who_pre2=libpre2\n\
             libb: who_all=exe who_ab=liba who_weak=liba (weak) who_pre=libpre\n",
            0,
        );
    });
}

#[test]
fn preload_option_missing_is_ignored() {
    on_both_arches("preload_option_missing_is_ignored", |c| {
        let r = run("interpose").opts(&["--library-path", "{dir}", "--preload", "libnothere.so"]);
        c.expect(&r, NO_PRELOAD, 0);
    });
}
