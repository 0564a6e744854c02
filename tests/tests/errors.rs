//! Inputs the loader must refuse, and how: ld-cah prints exactly one line,
//! `ld-cah.so: error: <object>: <what went wrong>`, and exits with 127.
//! glibc's messages differ, so for glibc only the status is compared.
//!
//! The damaged libraries are copies of libsimple.so, each alone in a
//! `bad_*` directory, given to `needsimple` with `--library-path`.

use cah_tests::{on_both_arches, run, GlibcFails};

#[test]
fn missing_library() {
    on_both_arches("missing_library", |c| {
        c.expect_refused(&run("needgone").lib_path(), GlibcFails::Status(127), &["libgone.so"]);
    });
}

/// A data symbol and a function (bound at start-up: -z now) that no
/// object defines.
#[test]
fn missing_symbol() {
    on_both_arches("missing_symbol", |c| {
        c.expect_refused(&run("missing_sym").lib_path(), GlibcFails::Status(127), &["simple_gone_"]);
    });
}

fn bad_lib(dir: &str) -> cah_tests::Run {
    let path = format!("{{dir}}/{dir}");
    run("needsimple").opts(&["--library-path", &path])
}

#[test]
fn empty_library_file() {
    on_both_arches("empty_library_file", |c| {
        c.expect_refused(&bad_lib("bad_empty"), GlibcFails::Status(127), &["libsimple.so"]);
    });
}

/// Shorter than an ELF header.
#[test]
fn truncated_library_in_header() {
    on_both_arches("truncated_library_in_header", |c| {
        c.expect_refused(&bad_lib("bad_short"), GlibcFails::Status(127), &["libsimple.so"]);
    });
}

/// A whole ELF header whose program headers run past the end of the file.
#[test]
fn truncated_library_in_program_headers() {
    on_both_arches("truncated_library_in_program_headers", |c| {
        c.expect_refused(&bad_lib("bad_phdrs"), GlibcFails::Status(127), &["libsimple.so"]);
    });
}

/// Headers intact, segments past the end of the file.
#[test]
fn truncated_library_in_segments() {
    on_both_arches("truncated_library_in_segments", |c| {
        c.expect_refused(
            &bad_lib("bad_segments"),
            GlibcFails::NotCompared("glibc maps the segments past the end of the file and dies of SIGBUS"),
            &["libsimple.so"],
        );
    });
}

/// The wrong arch's libsimple.so, alone in the search path.
#[test]
fn library_of_the_wrong_arch() {
    on_both_arches("library_of_the_wrong_arch", |c| {
        c.expect_refused(&bad_lib("bad_arch"), GlibcFails::Status(127), &["libsimple.so"]);
    });
}

/// A library of the wrong machine or class is skipped while searching:
/// the next directory's libsimple.so is used.
#[test]
fn wrong_arch_and_class_are_skipped_while_searching() {
    on_both_arches("wrong_arch_and_class_are_skipped_while_searching", |c| {
        for bad in ["bad_arch", "bad_class"] {
            let path = format!("{{dir}}/{bad}:{{dir}}");
            c.expect(&run("needsimple").opts(&["--library-path", &path]), "libsimple says 7\n", 0);
            let path = format!("{{dir}}/{bad}:{{dir}}");
            c.expect(&run("needsimple").env("LD_LIBRARY_PATH", &path), "libsimple says 7\n", 0);
        }
    });
}

#[test]
fn library_of_the_wrong_class() {
    on_both_arches("library_of_the_wrong_class", |c| {
        c.expect_refused(&bad_lib("bad_class"), GlibcFails::Status(127), &["libsimple.so"]);
    });
}

/// A text file (a GNU ld script, like /usr/lib/.../libc.so) where a library
/// is expected.
#[test]
fn library_that_is_not_elf() {
    on_both_arches("library_that_is_not_elf", |c| {
        c.expect_refused(&bad_lib("bad_text"), GlibcFails::Status(127), &["libsimple.so"]);
    });
}

/// Unlike the wrong arch or class, a file that is not ELF (or too short to
/// be) stops the search: glibc fails even though a good libsimple.so comes
/// next in the path.
#[test]
fn damaged_library_stops_the_search() {
    on_both_arches("damaged_library_stops_the_search", |c| {
        for bad in ["bad_text", "bad_short", "bad_empty"] {
            let path = format!("{{dir}}/{bad}:{{dir}}");
            let r = run("needsimple").opts(&["--library-path", &path]);
            c.expect_refused(&r, GlibcFails::Status(127), &["libsimple.so"]);
        }
    });
}

/// The program itself does not exist / is not ELF.
#[test]
fn bad_program() {
    on_both_arches("bad_program", |c| {
        c.expect_refused(&run("does-not-exist").direct_only(), GlibcFails::Status(127), &["does-not-exist"]);
        c.expect_refused(&run("bad_text/libsimple.so").direct_only(), GlibcFails::Status(127), &["libsimple.so"]);
    });
}
