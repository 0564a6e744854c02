//! Cross-check with libc's `_thread_db_*` descriptors.

use crate::dwarf::{lookup, Types};
use crate::spec::Tag;
use crate::{Arch, Ctx, Elf};
use object::{Object, ObjectSection, ObjectSymbol};
use std::collections::BTreeMap;

/// Which type a descriptor describes.
#[derive(Clone, Copy)]
pub(crate) enum DbType {
    Struct(&'static str),
    Typedef(&'static str),
}

impl DbType {
    pub(crate) fn key(self) -> (Tag, String) {
        match self {
            DbType::Struct(n) => (Tag::Struct, n.to_string()),
            DbType::Typedef(n) => (Tag::Typedef, n.to_string()),
        }
    }
}

/// `_thread_db_<suffix>`, the type, and the member path (`""`: sizeof).
/// `pthread_dtvp` is arch-dependent and handled apart.
pub(crate) const THREAD_DB: &[(&str, DbType, &str)] = &[
    ("sizeof_pthread", DbType::Struct("pthread"), ""),
    ("pthread_list", DbType::Struct("pthread"), "list"),
    ("pthread_tid", DbType::Struct("pthread"), "tid"),
    ("pthread_cancelhandling", DbType::Struct("pthread"), "cancelhandling"),
    ("pthread_specific", DbType::Struct("pthread"), "specific"),
    ("pthread_report_events", DbType::Struct("pthread"), "report_events"),
    ("pthread_start_routine", DbType::Struct("pthread"), "start_routine"),
    ("pthread_schedpolicy", DbType::Struct("pthread"), "schedpolicy"),
    ("pthread_eventbuf", DbType::Struct("pthread"), "eventbuf"),
    ("pthread_nextevent", DbType::Struct("pthread"), "nextevent"),
    ("rtld_global__dl_stack_used", DbType::Struct("rtld_global"), "_dl_stack_used"),
    ("rtld_global__dl_stack_user", DbType::Struct("rtld_global"), "_dl_stack_user"),
    ("rtld_global__dl_tls_dtv_slotinfo_list", DbType::Struct("rtld_global"), "_dl_tls_dtv_slotinfo_list"),
    ("link_map_l_tls_modid", DbType::Struct("link_map"), "l_tls_modid"),
    ("link_map_l_tls_offset", DbType::Struct("link_map"), "l_tls_offset"),
    ("sizeof_dtv_slotinfo_list", DbType::Struct("dtv_slotinfo_list"), ""),
    ("dtv_slotinfo_list_len", DbType::Struct("dtv_slotinfo_list"), "len"),
    ("dtv_slotinfo_list_next", DbType::Struct("dtv_slotinfo_list"), "next"),
    ("dtv_slotinfo_list_slotinfo", DbType::Struct("dtv_slotinfo_list"), "slotinfo"),
    ("sizeof_dtv_slotinfo", DbType::Struct("dtv_slotinfo"), ""),
    ("dtv_slotinfo_gen", DbType::Struct("dtv_slotinfo"), "gen"),
    ("dtv_slotinfo_map", DbType::Struct("dtv_slotinfo"), "map"),
    ("sizeof_list_t", DbType::Typedef("list_t"), ""),
    ("list_t_next", DbType::Typedef("list_t"), "next"),
    ("list_t_prev", DbType::Typedef("list_t"), "prev"),
    ("dtv_t_counter", DbType::Typedef("dtv_t"), "counter"),
    ("dtv_t_pointer_val", DbType::Typedef("dtv_t"), "pointer.val"),
];

/// The descriptors of libc's `.dynsym`: name suffix -> 32-bit words.
pub(crate) fn thread_db_descriptors(libc: &Elf) -> Result<BTreeMap<String, Vec<u32>>, String> {
    let file = object::File::parse(&*libc.data).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for sym in file.dynamic_symbols() {
        let Ok(name) = sym.name() else { continue };
        let Some(suffix) = name.strip_prefix("_thread_db_") else {
            continue;
        };
        let Some(index) = sym.section_index() else {
            continue;
        };
        let section = file.section_by_index(index).map_err(|e| e.to_string())?;
        let Some(bytes) = section.data_range(sym.address(), sym.size()).map_err(|e| e.to_string())? else {
            continue;
        };
        let words = bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.insert(suffix.to_string(), words);
    }
    Ok(out)
}

/// Every descriptor we can interpret must agree with the DWARF: the
/// descriptors are compiled from the same headers into the stripped libc.
///
/// Before 2.34 libc has none: they are libpthread's, and local symbols
/// there (only in its debug file's symbol table), so the check is skipped
/// with a note. Descriptors of members the build does not have are left
/// out only when the build has no such descriptor either.
pub(crate) fn check_thread_db(types: &Types, libc: &Elf, ctx: &Ctx) -> Result<(), String> {
    let desc = thread_db_descriptors(libc)?;
    if desc.is_empty() {
        (ctx.note)("libc.so.6 exports no _thread_db descriptors (before 2.34 they are libpthread's): not cross-checked");
        return Ok(());
    }
    let source = "libc.so.6";
    let mut checked = 0;
    let mut mismatches = Vec::new();
    let mut expect = |name: &str, want: u64, got: Option<&Vec<u32>>, word: usize| match got.and_then(|w| w.get(word)) {
        Some(&v) if v as u64 == want => checked += 1,
        Some(&v) => mismatches.push(format!("_thread_db_{name} = {v}, DWARF says {want}")),
        None => mismatches.push(format!("_thread_db_{name} missing")),
    };
    for (name, db, path) in THREAD_DB {
        let (tag, tname) = db.key();
        let ty = types.get(tag, &tname).ok_or_else(|| format!("{tname} not in the DWARF"))?;
        if path.is_empty() {
            expect(name, ty.size(), desc.get(*name), 0);
        } else {
            let parts: Vec<&str> = path.split('.').collect();
            let f = match lookup(ty, &parts, 0) {
                Some(f) => f,
                None if !desc.contains_key(*name) => continue,
                None => return Err(format!("{tname}.{path} not in the DWARF")),
            };
            expect(name, f.off, desc.get(*name), 2);
        }
    }
    // The DTV pointer: x86_64 `header.dtv` in struct pthread; aarch64
    // (TLS_DTV_AT_TP) `tcbhead_t.dtv` just after the struct.
    let pthread = types.get(Tag::Struct, "pthread").ok_or("struct pthread not in the DWARF")?;
    let dtvp = match ctx.arch {
        Arch::X86_64 => lookup(pthread, &["header", "dtv"], 0).map(|f| f.off),
        Arch::Aarch64 => Some(pthread.size()),
    };
    if let Some(off) = dtvp {
        expect("pthread_dtvp", off, desc.get("pthread_dtvp"), 2);
    }
    if !mismatches.is_empty() {
        return Err(format!("{}: DWARF and libc's _thread_db descriptors disagree:\n  {}", ctx.label, mismatches.join("\n  ")));
    }
    (ctx.note)(&format!("{checked} _thread_db descriptors of {source} agree with the DWARF"));
    Ok(())
}
