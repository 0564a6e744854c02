//! Layout tables: where glibc keeps each member of the structures that
//! `libc.so.6` shares with its dynamic loader.
//!
//! One [`Layout`] per glibc *build* (version, distribution patches, configure
//! options and architecture all move members), matched by the build id of the
//! `libc.so.6` in a program's closure. The types below are written by hand;
//! every number in a table is generated from the build's DWARF by
//! `cargo xtask glibc-layouts` into `layouts/` (see `docs/glibc-layouts.md`).
//!
//! # This file is also the generator's input
//!
//! The xtask reads this file to learn which members to extract, so its table
//! structs follow a fixed shape:
//!
//! * a table struct carries a doc line ``DWARF: `struct NAME` `` (or
//!   `union NAME`, `typedef NAME`), optionally followed by `, x86_64 only` or
//!   `, aarch64 only`; its first field is `pub size: u32` (`sizeof`);
//! * every other field is one line `pub NAME: TYPE,` with `TYPE` one of
//!   [`Field`], [`Bits`], [`Array`] or `Option<...>` of them. A plain type
//!   means "every build has it; the generator fails if one does not";
//!   `Option` means "absent from some builds" and is `None` there;
//! * the DWARF member is the field's name unless a doc line
//!   ``DWARF: `a.b` `` gives a path (descending into named members; anonymous
//!   unions and structs are searched transparently);
//! * in [`Types`], a field whose type is a table struct (or `Option` of one)
//!   is filled from the struct of that name; `enumerators` and the fields of
//!   [`Layout`] are build metadata, and `Layout::types` stands for the fields
//!   of [`Types`] in its place (the order of the installed table format).
//!
//! Offsets of nested paths are from the start of the table's own struct.
//! Members are named as glibc spells them (ABI names verbatim).
//!
//! # Relocation-free
//!
//! `ld-cah.so` relocates itself at start, and every page of its data that
//! holds a pointer is copied and written then (`crt`). So a built-in table
//! keeps its pointers few: [`Types`], the structure layouts (about 2.4 KB a
//! build), holds none and is a `static` of its own in `.rodata`; the lists
//! hold pointer-free elements, their names in one string each ([`Names`],
//! NUL-terminated entries, as glibc keeps its `unsecvars` list). What is
//! left in `.data.rel.ro` is [`Layout`] itself, ten pointers a build.

/// A member: byte offset from the start of its struct, and its size.
///
/// Offsets and sizes are 16 bits in every table (glibc's largest struct
/// the loader writes, `_rtld_global`, is under 5 KB; a generator or
/// decoder meeting a larger value refuses the table): a build's [`Types`]
/// is then about 2.4 KB instead of 3.9. Four-byte alignment lets a
/// `Field` travel in one register, so the decoder of installed tables
/// stores each with one instruction.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(4))]
pub struct Field {
    /// `offsetof`.
    pub off: u16,
    /// `sizeof` of the member (for an array, of the whole array).
    pub size: u16,
}

impl Field {
    /// One past the member's last byte.
    pub const fn end(&self) -> u32 {
        self.off as u32 + self.size as u32
    }
}

/// A bit-field member. Both supported targets are little-endian, so bit `n`
/// of the field is bit `(bit + n) % 8` of byte `off + (bit + n) / 8`.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bits {
    /// The byte that holds the field's lowest bit.
    pub off: u16,
    /// Position of the lowest bit inside that byte (0..8).
    pub bit: u8,
    /// Width in bits (1..=64).
    pub width: u8,
}

impl Bits {
    /// Bit offset from the start of the struct (DWARF's `DW_AT_data_bit_offset`).
    pub const fn bit_offset(&self) -> u32 {
        self.off as u32 * 8 + self.bit as u32
    }

    /// Number of bytes that hold some bit of the field, starting at `off`.
    pub const fn byte_span(&self) -> u32 {
        (self.bit as u32 + self.width as u32).div_ceil(8)
    }

    /// The field's value inside `record` (the bytes of the whole struct).
    /// `None` if `record` is too short.
    pub fn get(&self, record: &[u8]) -> Option<u64> {
        let bytes = record.get(self.off as usize..self.off as usize + self.byte_span() as usize)?;
        let mut word: u128 = 0;
        for (i, b) in bytes.iter().enumerate() {
            word |= (*b as u128) << (8 * i);
        }
        Some(((word >> self.bit) & self.mask()) as u64)
    }

    /// Stores `value` (truncated to the width) into `record`, leaving every
    /// other bit unchanged. `None` if `record` is too short.
    pub fn set(&self, record: &mut [u8], value: u64) -> Option<()> {
        let span = self.byte_span() as usize;
        let bytes = record.get_mut(self.off as usize..self.off as usize + span)?;
        let mut word: u128 = 0;
        for (i, b) in bytes.iter().enumerate() {
            word |= (*b as u128) << (8 * i);
        }
        let mask = self.mask() << self.bit;
        word = (word & !mask) | (((value as u128) << self.bit) & mask);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (word >> (8 * i)) as u8;
        }
        Some(())
    }

    const fn mask(&self) -> u128 {
        (1u128 << self.width) - 1
    }
}

/// An array member: `len` elements of `stride` bytes from `off`.
/// A flexible array member (`T x[]`) has `len` 0.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Array {
    /// `offsetof` of element 0.
    pub off: u16,
    /// `sizeof` of one element.
    pub stride: u16,
    /// Number of elements (outermost dimension).
    pub len: u16,
}

impl Array {
    /// Bytes taken by the whole array.
    pub const fn size(&self) -> u32 {
        self.stride as u32 * self.len as u32
    }

    /// One past the array's last byte.
    pub const fn end(&self) -> u32 {
        self.off as u32 + self.size()
    }

    /// Offset of element `i`; `None` past the end (always, for a flexible
    /// array, whose elements the caller must bound itself) or past the
    /// offsets a table holds.
    pub fn at(&self, i: u32) -> Option<u16> {
        if i < u32::from(self.len) {
            u16::try_from(u32::from(self.off) + i * u32::from(self.stride)).ok()
        } else {
            None
        }
    }
}

/// The architecture a glibc build targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `x86_64` (Debian `amd64`).
    X86_64,
    /// `aarch64` (Debian `arm64`).
    Aarch64,
}

impl Arch {
    /// The build's architecture from an ELF `e_machine`.
    pub const fn from_machine(machine: u16) -> Option<Arch> {
        match machine {
            object::elf::EM_X86_64 => Some(Arch::X86_64),
            object::elf::EM_AARCH64 => Some(Arch::Aarch64),
            _ => None,
        }
    }
}

/// Names in one string, each one followed by a NUL (`"GCONV_PATH\0TMPDIR\0"`;
/// an empty name is a lone NUL, no names the empty string): a list of
/// names with one pointer, where a `&[&str]` has one per name, each needing
/// a relocation in the loader's own data (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Names(pub &'static str);

impl Names {
    /// The names, in order.
    pub fn iter(self) -> NamesIter {
        NamesIter { rest: self.0 }
    }

    /// The name that starts at byte `at` (`""` past the end). Names are
    /// short: a byte loop finds the end sooner than `memchr` gets going.
    pub fn at(self, at: usize) -> &'static str {
        let b = self.0.as_bytes();
        let mut end = at;
        while end < b.len() && b[end] != 0 {
            end += 1;
        }
        self.0.get(at..end).unwrap_or("")
    }

    /// Number of names. (Name by name: a count of every NUL byte would be
    /// vectorised into far more code, for a count `check` alone makes.)
    #[inline(never)]
    pub const fn len(self) -> usize {
        let b = self.0.as_bytes();
        let (mut i, mut n) = (0, 0);
        while i < b.len() {
            while i < b.len() && b[i] != 0 {
                i += 1;
            }
            n += 1;
            i += 1;
        }
        n
    }

    /// Whether there are no names.
    pub const fn is_empty(self) -> bool {
        self.0.is_empty()
    }

    /// Whether `name` is one of the names.
    pub fn contains(self, name: &[u8]) -> bool {
        self.iter().any(|n| n.as_bytes() == name)
    }

    /// Empty, or every name terminated (the string ends with a NUL).
    pub const fn is_well_formed(self) -> bool {
        let b = self.0.as_bytes();
        b.is_empty() || b[b.len() - 1] == 0
    }

    /// Whether the names are strictly ascending (bytewise).
    pub const fn is_sorted(self) -> bool {
        let b = self.0.as_bytes();
        // The start of the previous name (none yet: `usize::MAX`) and of
        // the current one.
        let (mut prev, mut cur, mut i) = (usize::MAX, 0, 0);
        while i < b.len() {
            if b[i] == 0 {
                if prev != usize::MAX && !name_less(b, prev, cur) {
                    return false;
                }
                prev = cur;
                cur = i + 1;
            }
            i += 1;
        }
        true
    }
}

/// Whether the NUL-terminated name at `a` in `b` sorts strictly before the
/// one at `c` (bytewise, a prefix first).
const fn name_less(b: &[u8], a: usize, c: usize) -> bool {
    let mut k = 0;
    loop {
        let (x, y) = (b[a + k], b[c + k]);
        if x != y {
            // A NUL ends the shorter name, and sorts first.
            return x < y;
        }
        if x == 0 {
            return false;
        }
        k += 1;
    }
}

/// The names of a [`Names`], in order.
#[derive(Clone)]
pub struct NamesIter {
    rest: &'static str,
}

impl Iterator for NamesIter {
    type Item = &'static str;

    fn next(&mut self) -> Option<&'static str> {
        if self.rest.is_empty() {
            return None;
        }
        let name = Names(self.rest).at(0);
        self.rest = self.rest.get(name.len() + 1..).unwrap_or("");
        Some(name)
    }
}

impl core::fmt::Debug for Names {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One `_thread_db_*` descriptor: glibc's `db_desc_t`, three 32-bit words
/// (element size in bits, count, offset), or one word for a size or a
/// constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadDb {
    /// Number of words (at most 3).
    pub len: u8,
    /// The words; those past `len` are 0.
    pub words: [u32; 3],
}

impl ThreadDb {
    /// The descriptor of `words` (at most 3).
    pub const fn new(words: &[u32]) -> ThreadDb {
        assert!(words.len() <= 3, "a _thread_db descriptor has at most 3 words");
        let mut w = [0; 3];
        let mut i = 0;
        while i < words.len() {
            w[i] = words[i];
            i += 1;
        }
        ThreadDb { len: words.len() as u8, words: w }
    }

    /// The words.
    pub fn words(&self) -> &[u32] {
        &self.words[..(self.len as usize).min(3)]
    }
}

/// The layout-relevant facts of a glibc build, as its `libc.so.6` shows
/// them at run time. Every build with the same facts has the same layout.
#[derive(Debug)]
pub struct Fingerprint {
    /// `__nptl_version` (`"2.36"`); before 2.34, which has none in libc,
    /// the banner's release and distributor (`"2.31 Debian"`).
    pub version: &'static str,
    /// Every symbol `libc.so.6` imports (all from the loader), sorted.
    pub imports: Names,
    /// Every `_thread_db_*` descriptor of `libc.so.6`, in the order of
    /// `thread_db_names`.
    pub thread_db: &'static [ThreadDb],
    /// Their names without the prefix, sorted.
    pub thread_db_names: Names,
}

impl Fingerprint {
    /// Every `_thread_db_*` descriptor: its name without the prefix, and
    /// its words.
    pub fn descriptors(&self) -> impl Iterator<Item = (&'static str, &'static [u32])> {
        self.thread_db_names.iter().zip(self.thread_db.iter().map(ThreadDb::words))
    }
}

/// Enumerator values the loader stores into glibc's structures; `None`
/// where the build has no such enumerator.
#[derive(Clone, Default, Debug)]
pub struct Enumerators {
    /// `ALLOCATE_GUARD_USER`: `struct pthread.stack_mode` of the main thread.
    pub allocate_guard_user: Option<i64>,
    /// `THREAD_STATE_JOINABLE`: `struct pthread.joinstate` of the main thread.
    pub thread_state_joinable: Option<i64>,
    /// `dl_readonly_area_rdonly`: `_dl_readonly_area` results.
    pub dl_readonly_area_rdonly: Option<i64>,
    /// `dl_readonly_area_writable`.
    pub dl_readonly_area_writable: Option<i64>,
    /// `dl_readonly_area_not_found`.
    pub dl_readonly_area_not_found: Option<i64>,
    /// `arch_kind_intel`: `cpu_features.basic.kind` values (x86; 2.41 added
    /// Hygon before `other`).
    pub arch_kind_intel: Option<i64>,
    /// `arch_kind_amd`.
    pub arch_kind_amd: Option<i64>,
    /// `arch_kind_zhaoxin`.
    pub arch_kind_zhaoxin: Option<i64>,
    /// `arch_kind_hygon` (2.41 and later; before, Hygon counts as AMD).
    pub arch_kind_hygon: Option<i64>,
    /// `arch_kind_other`.
    pub arch_kind_other: Option<i64>,
    /// `bit_arch_Fast_Rep_String`: the `cpu_features.preferred[0]` tuning
    /// bits libc's IFUNC resolvers read (their order changed in 2.41).
    pub bit_arch_fast_rep_string: Option<i64>,
    /// `bit_arch_Fast_Copy_Backward`.
    pub bit_arch_fast_copy_backward: Option<i64>,
    /// `bit_arch_Slow_BSF`.
    pub bit_arch_slow_bsf: Option<i64>,
    /// `bit_arch_Fast_Unaligned_Load`.
    pub bit_arch_fast_unaligned_load: Option<i64>,
    /// `bit_arch_Prefer_PMINUB_for_stringop`.
    pub bit_arch_prefer_pminub_for_stringop: Option<i64>,
    /// `bit_arch_Fast_Unaligned_Copy`.
    pub bit_arch_fast_unaligned_copy: Option<i64>,
    /// `bit_arch_I586`.
    pub bit_arch_i586: Option<i64>,
    /// `bit_arch_I686`.
    pub bit_arch_i686: Option<i64>,
    /// `bit_arch_Slow_SSE4_2`.
    pub bit_arch_slow_sse4_2: Option<i64>,
    /// `bit_arch_AVX_Fast_Unaligned_Load`.
    pub bit_arch_avx_fast_unaligned_load: Option<i64>,
    /// `bit_arch_Prefer_No_VZEROUPPER`.
    pub bit_arch_prefer_no_vzeroupper: Option<i64>,
    /// `bit_arch_Prefer_No_AVX512`.
    pub bit_arch_prefer_no_avx512: Option<i64>,
    /// `bit_arch_Avoid_Short_Distance_REP_MOVSB`.
    pub bit_arch_avoid_short_distance_rep_movsb: Option<i64>,
    /// `bit_arch_Avoid_Non_Temporal_Memset` (2.41 and later).
    pub bit_arch_avoid_non_temporal_memset: Option<i64>,
    /// `bit_arch_Avoid_STOSB` (2.41 and later).
    pub bit_arch_avoid_stosb: Option<i64>,
}

/// Everything the loader must know about one glibc build. The structure
/// layouts are in [`Types`], which `Layout` derefs to
/// (`layout.link_map.l_addr`).
#[derive(Debug)]
pub struct Layout {
    /// Upstream release (`"2.36"`), from libc's banner.
    pub glibc_version: &'static str,
    /// Target architecture.
    pub arch: Arch,
    /// What a `libc.so.6` must show for this table to be used
    /// (see `glibc::fingerprint`).
    pub fingerprint: Fingerprint,
    /// The structure layouts (pointer-free: a built-in one is in `.rodata`).
    pub types: &'static Types,
    /// ld.so's `tunable_list[]` (read from ld.so's data; the order, and so
    /// the ids, are build-specific).
    pub tunables: Tunables,
    /// The variables ld.so removes from the environment of `AT_SECURE`
    /// programs (its `unsecvars.h` list, read from ld.so's data), in order.
    pub unsecure_env: Names,
}

impl core::ops::Deref for Layout {
    type Target = Types;

    fn deref(&self) -> &Types {
        self.types
    }
}

/// The structure layouts of one glibc build and the enumerator values the
/// loader writes: every number of a table and no pointer, so that a
/// built-in `Types` needs no relocation and sits in `.rodata`.
#[derive(Clone, Default, Debug)]
pub struct Types {
    /// Values of glibc enumerators the loader writes, from the DWARF.
    pub enumerators: Enumerators,
    /// `_rtld_global`.
    pub rtld_global: RtldGlobal,
    /// `_rtld_global_ro`.
    pub rtld_global_ro: RtldGlobalRo,
    /// One element of `_rtld_global._dl_ns[]`.
    pub link_namespaces: LinkNamespaces,
    /// `struct link_map`.
    pub link_map: LinkMap,
    /// `struct r_scope_elem`.
    pub r_scope_elem: RScopeElem,
    /// `struct libname_list`.
    pub libname_list: LibnameList,
    /// `struct r_debug` (`_r_debug`).
    pub r_debug: RDebug,
    /// `struct r_debug_extended` (2.35 and later).
    pub r_debug_extended: Option<RDebugExtended>,
    /// `struct pthread`.
    pub pthread: Pthread,
    /// `tcbhead_t`.
    pub tcbhead: Tcbhead,
    /// `list_t`.
    pub list_t: ListT,
    /// `struct robust_list_head`.
    pub robust_list_head: RobustListHead,
    /// `pthread_mutex_t` (the loader locks in `_rtld_global`).
    pub pthread_mutex: PthreadMutex,
    /// `struct unique_sym_table`.
    pub unique_sym_table: UniqueSymTable,
    /// `struct dtv_slotinfo_list`.
    pub dtv_slotinfo_list: DtvSlotinfoList,
    /// `struct dtv_slotinfo`.
    pub dtv_slotinfo: DtvSlotinfo,
    /// `dtv_t`.
    pub dtv: Dtv,
    /// `tls_index`.
    pub tls_index: TlsIndex,
    /// `struct dl_exception`.
    pub dl_exception: DlException,
    /// `struct r_found_version`.
    pub r_found_version: RFoundVersion,
    /// `struct dl_find_object` (2.35 and later).
    pub dl_find_object: Option<DlFindObject>,
    /// `struct link_map_machine` (`link_map.l_mach`).
    pub link_map_machine: LinkMapMachine,
    /// x86 `struct cpu_features` (`_rtld_global_ro._dl_x86_cpu_features`).
    pub x86_cpu_features: Option<X86CpuFeatures>,
    /// x86 `struct cpuid_feature_internal` (`cpu_features.features[i]`).
    pub cpuid_feature_internal: Option<CpuidFeatureInternal>,
    /// aarch64 `struct cpu_features` (`_rtld_global_ro._dl_aarch64_cpu_features`).
    pub aarch64_cpu_features: Option<Aarch64CpuFeatures>,
    /// `tunable_val_t`, the value `__tunable_get_val` passes to its callback.
    pub tunable_val: TunableVal,
}

/// `struct rtld_global`: the loader's mutable state that libc reads and writes.
///
/// DWARF: `struct rtld_global`
#[derive(Default, Clone, Copy, Debug)]
pub struct RtldGlobal {
    /// `sizeof(struct rtld_global)`.
    pub size: u16,
    /// Namespaces (`DL_NNS` elements of [`LinkNamespaces`]).
    pub _dl_ns: Array,
    /// Namespaces in use; at least 1.
    pub _dl_nns: Field,
    /// Recursive pthread mutex: dlopen/dlsym/dladdr.
    pub _dl_load_lock: Field,
    /// Recursive pthread mutex: `dl_iterate_phdr`.
    pub _dl_load_write_lock: Field,
    /// Recursive pthread mutex: TLS bookkeeping.
    pub _dl_load_tls_lock: Option<Field>,
    /// Maps ever added (`dlpi_adds`).
    pub _dl_load_adds: Field,
    /// The `DF_1_INITFIRST` object.
    pub _dl_initfirst: Field,
    /// `LD_PROFILE` object (NULL).
    pub _dl_profile_map: Field,
    /// Statistics.
    pub _dl_num_relocations: Field,
    /// Statistics.
    pub _dl_num_cache_relocations: Field,
    /// Search directory list; `__libc_freeres` walks it.
    pub _dl_all_dirs: Field,
    /// glibc's own link map (inside `_rtld_global` until 2.40).
    pub _dl_rtld_map: Option<Field>,
    /// Audit state of glibc's own map (until 2.40).
    pub _dl_rtld_auditstate: Option<Array>,
    /// x86 CET state (CET-enabled builds).
    pub _dl_x86_feature_1: Option<Field>,
    /// x86 CET control.
    pub _dl_x86_feature_control: Option<Field>,
    /// aarch64 guarded control stack state (2.41).
    pub _dl_aarch64_gcs: Option<Field>,
    /// `PT_GNU_STACK` flags of the executable (until 2.42).
    pub _dl_stack_flags: Option<Field>,
    /// `mmap` protection of thread stacks (2.43, replaces `_dl_stack_flags`).
    pub _dl_stack_prot_flags: Option<Field>,
    /// TLS: gaps in the module id space.
    pub _dl_tls_dtv_gaps: Field,
    /// TLS: highest module id.
    pub _dl_tls_max_dtv_idx: Field,
    /// TLS: slot info list head.
    pub _dl_tls_dtv_slotinfo_list: Field,
    /// TLS: modules in static TLS at start-up.
    pub _dl_tls_static_nelem: Field,
    /// TLS: static TLS bytes used.
    pub _dl_tls_static_used: Field,
    /// TLS: optional static TLS left for dlopen.
    pub _dl_tls_static_optional: Field,
    /// TLS: the main thread's DTV.
    pub _dl_initial_dtv: Field,
    /// TLS: generation counter.
    pub _dl_tls_generation: Field,
    /// Scope arrays waiting to be freed.
    pub _dl_scope_free_list: Field,
    /// nptl: stacks in use (`list_t` head).
    pub _dl_stack_used: Option<Field>,
    /// nptl: user-provided stacks, main thread included (`list_t` head).
    pub _dl_stack_user: Option<Field>,
    /// nptl: cached stacks (`list_t` head).
    pub _dl_stack_cache: Option<Field>,
    /// nptl: bytes in the stack cache.
    pub _dl_stack_cache_actsize: Option<Field>,
    /// nptl: stack being linked/unlinked (for fork).
    pub _dl_in_flight_stack: Option<Field>,
    /// nptl low-level lock over the three lists.
    pub _dl_stack_cache_lock: Option<Field>,
    /// Until 2.33: `void (*)(void *)` libc calls to lock the loader locks
    /// (libpthread installs `pthread_mutex_lock`; the loader a default).
    pub _dl_rtld_lock_recursive: Option<Field>,
    /// Until 2.33: the unlocking hook, as above.
    pub _dl_rtld_unlock_recursive: Option<Field>,
    /// Until 2.33: `int (*)(void **)`, the hook libpthread replaces to make
    /// thread stacks executable too.
    pub _dl_make_stack_executable_hook: Option<Field>,
    /// Until 2.33: static TLS size (later in `_rtld_global_ro`).
    pub _dl_tls_static_size: Option<Field>,
    /// Until 2.33: static TLS alignment (later in `_rtld_global_ro`).
    pub _dl_tls_static_align: Option<Field>,
    /// Until 2.33: `void (*)(struct link_map *)`, initialises a dlopened
    /// module's static TLS in every thread (libpthread's hook).
    pub _dl_init_static_tls: Option<Field>,
    /// Until 2.33: `void (*)(void)`, waits for other threads' lookups
    /// (libpthread's hook).
    pub _dl_wait_lookup_done: Option<Field>,
}

/// `struct link_namespaces`: one element of `_rtld_global._dl_ns[]`.
///
/// DWARF: `struct link_namespaces`
#[derive(Default, Clone, Copy, Debug)]
pub struct LinkNamespaces {
    /// `sizeof(struct link_namespaces)`.
    pub size: u16,
    /// Head of the namespace's `l_next` chain.
    pub _ns_loaded: Field,
    /// Number of maps in the chain.
    pub _ns_nloaded: Field,
    /// The global scope.
    pub _ns_main_searchlist: Field,
    /// Capacity of the global scope's list (0: not malloc'ed).
    pub _ns_global_scope_alloc: Field,
    /// Pending global scope additions (dlopen).
    pub _ns_global_scope_pending_adds: Field,
    /// libc's map in this namespace.
    pub libc_map: Option<Field>,
    /// `STB_GNU_UNIQUE` symbol table ([`UniqueSymTable`]).
    pub _ns_unique_sym_table: Field,
    /// Debugger interface of the namespace (2.35..2.41 upstream).
    pub _ns_debug: Option<Field>,
    /// Renamed and unused once `_r_debug_array` exists (2.42, backported).
    pub _ns_debug_unused: Option<Field>,
}

/// `struct rtld_global_ro`: read-only after start-up; libc reads much of it.
///
/// DWARF: `struct rtld_global_ro`
#[derive(Default, Clone, Copy, Debug)]
pub struct RtldGlobalRo {
    /// `sizeof(struct rtld_global_ro)`.
    pub size: u16,
    /// `LD_DEBUG` mask (0).
    pub _dl_debug_mask: Field,
    /// `AT_PLATFORM` string.
    pub _dl_platform: Field,
    /// Its length.
    pub _dl_platformlen: Field,
    /// `AT_PAGESZ`.
    pub _dl_pagesize: Field,
    /// `AT_MINSIGSTKSZ` (never 0).
    pub _dl_minsigstacksize: Option<Field>,
    /// Ignore `ld.so.cache`.
    pub _dl_inhibit_cache: Field,
    /// Copy of the initial global scope ([`RScopeElem`]).
    pub _dl_initial_searchlist: Field,
    /// `AT_CLKTCK`.
    pub _dl_clktck: Field,
    /// Verbose `LD_WARN`.
    pub _dl_verbose: Field,
    /// Debug output fd.
    pub _dl_debug_fd: Field,
    /// Lazy binding.
    pub _dl_lazy: Field,
    /// `LD_BIND_NOT`.
    pub _dl_bind_not: Field,
    /// `LD_DYNAMIC_WEAK`.
    pub _dl_dynamic_weak: Field,
    /// `AT_FPUCW` (2 bytes on x86_64, 4 on aarch64).
    pub _dl_fpu_control: Field,
    /// `getauxval(AT_HWCAP)` returns this.
    pub _dl_hwcap: Field,
    /// The process's auxv.
    pub _dl_auxv: Field,
    /// x86 CPU features ([`X86CpuFeatures`]).
    pub _dl_x86_cpu_features: Option<Field>,
    /// x86 hwcap names.
    pub _dl_x86_hwcap_flags: Option<Field>,
    /// x86 platform names (until 2.3x).
    pub _dl_x86_platforms: Option<Field>,
    /// x86 TLSDESC dynamic resolver variant (2.41).
    pub _dl_x86_tlsdesc_dynamic: Option<Field>,
    /// x86 lazy-binding trampoline variant (2.41).
    pub _dl_x86_64_runtime_resolve: Option<Field>,
    /// aarch64 CPU features ([`Aarch64CpuFeatures`]).
    pub _dl_aarch64_cpu_features: Option<Field>,
    /// aarch64 hwcap names.
    pub _dl_aarch64_cap_flags: Option<Field>,
    /// `--inhibit-rpath`.
    pub _dl_inhibit_rpath: Field,
    /// `LD_ORIGIN_PATH`.
    pub _dl_origin_path: Field,
    /// Static TLS size (x86_64: includes `struct pthread`).
    pub _dl_tls_static_size: Option<Field>,
    /// Static TLS alignment (never 0).
    pub _dl_tls_static_align: Option<Field>,
    /// Static TLS surplus.
    pub _dl_tls_static_surplus: Field,
    /// `LD_PROFILE`.
    pub _dl_profile: Field,
    /// `LD_PROFILE_OUTPUT`.
    pub _dl_profile_output: Field,
    /// Non-NULL while the loader is active (`rtld_active()`).
    pub _dl_init_all_dirs: Field,
    /// `AT_SYSINFO_EHDR`.
    pub _dl_sysinfo_dso: Field,
    /// The vDSO's link map.
    pub _dl_sysinfo_map: Field,
    /// vDSO `clock_gettime`.
    pub _dl_vdso_clock_gettime64: Field,
    /// vDSO `gettimeofday`.
    pub _dl_vdso_gettimeofday: Field,
    /// vDSO `time` (x86_64).
    pub _dl_vdso_time: Option<Field>,
    /// vDSO `getcpu` (x86_64).
    pub _dl_vdso_getcpu: Option<Field>,
    /// vDSO `clock_getres`.
    pub _dl_vdso_clock_getres_time64: Field,
    /// vDSO `getrandom` (2.41).
    pub _dl_vdso_getrandom: Option<Field>,
    /// `AT_HWCAP2`.
    pub _dl_hwcap2: Field,
    /// `AT_HWCAP3` (2.41).
    pub _dl_hwcap3: Option<Field>,
    /// `AT_HWCAP4` (2.41).
    pub _dl_hwcap4: Option<Field>,
    /// `glibc.rtld.dynamic_sort`.
    pub _dl_dso_sort_algo: Option<Field>,
    /// Function pointer: debug printf.
    pub _dl_debug_printf: Field,
    /// Function pointer: `_dl_mcount`.
    pub _dl_mcount: Field,
    /// Function pointer: symbol lookup (`dlsym`).
    pub _dl_lookup_symbol_x: Field,
    /// Function pointer: `dlopen`.
    pub _dl_open: Field,
    /// Function pointer: `dlclose`.
    pub _dl_close: Field,
    /// Function pointer: error catching for dlfcn.
    pub _dl_catch_error: Option<Field>,
    /// Function pointer: free an error string.
    pub _dl_error_free: Option<Field>,
    /// Function pointer: a module's TLS block, if allocated.
    pub _dl_tls_get_addr_soft: Field,
    /// Function pointer: `__libc_freeres` hook.
    pub _dl_libc_freeres: Option<Field>,
    /// Function pointer: `_dl_find_object`.
    pub _dl_find_object: Option<Field>,
    /// Function pointer: `_dl_readonly_area`, fortified `%n` checks (2.42).
    pub _dl_readonly_area: Option<Field>,
    /// dlfcn hook table (NULL).
    pub _dl_dlfcn_hook: Option<Field>,
    /// Audit interfaces.
    pub _dl_audit: Field,
    /// Number of audit modules.
    pub _dl_naudit: Field,
}

/// `struct link_map`: glibc's per-object record, handed to libc as handles.
///
/// DWARF: `struct link_map`
#[derive(Default, Clone, Copy, Debug)]
pub struct LinkMap {
    /// `sizeof(struct link_map)`.
    pub size: u16,
    /// Load bias.
    pub l_addr: Field,
    /// Path (`""` for the main program).
    pub l_name: Field,
    /// `.dynamic`.
    pub l_ld: Field,
    /// Next in the namespace chain.
    pub l_next: Field,
    /// Previous in the namespace chain.
    pub l_prev: Field,
    /// The map itself (proxies differ).
    pub l_real: Field,
    /// Namespace id.
    pub l_ns: Field,
    /// Names ([`LibnameList`]).
    pub l_libname: Field,
    /// Pointers to `.dynamic` entries, indexed by glibc's tag mapping.
    pub l_info: Array,
    /// Program headers in memory.
    pub l_phdr: Field,
    /// Entry point.
    pub l_entry: Field,
    /// Number of program headers.
    pub l_phnum: Field,
    /// Number of `.dynamic` entries.
    pub l_ldnum: Field,
    /// Object and its dependencies ([`RScopeElem`]).
    pub l_searchlist: Field,
    /// Scope for `DT_SYMBOLIC`.
    pub l_symbolic_searchlist: Field,
    /// The object that dlopened this one.
    pub l_loader: Field,
    /// Version needs.
    pub l_versions: Field,
    /// Their count.
    pub l_nversions: Field,
    /// Hash: bucket count.
    pub l_nbuckets: Field,
    /// GNU hash: bloom words minus one.
    pub l_gnu_bitmask_idxbits: Field,
    /// GNU hash: bloom shift.
    pub l_gnu_shift: Field,
    /// GNU hash: bloom filter.
    pub l_gnu_bitmask: Field,
    /// GNU hash: buckets.
    pub l_gnu_buckets: Field,
    /// SysV hash: chains (same storage as `l_gnu_buckets`).
    pub l_chain: Field,
    /// GNU hash: chain array minus `symoffset`.
    pub l_gnu_chain_zero: Field,
    /// SysV hash: buckets (same storage as `l_gnu_chain_zero`).
    pub l_buckets: Field,
    /// dlopen reference count.
    pub l_direct_opencount: Field,
    /// `lt_executable` 0, `lt_library` 1, `lt_loaded` 2.
    pub l_type: Bits,
    /// Object needs `GLIBC_ABI_DT_RELR`.
    pub l_dt_relr_ref: Option<Bits>,
    /// Relocated.
    pub l_relocated: Bits,
    /// Constructors started.
    pub l_init_called: Bits,
    /// In the global scope.
    pub l_global: Bits,
    /// Reserved.
    pub l_reserved: Bits,
    /// The main program.
    pub l_main_map: Option<Bits>,
    /// Graph walk marker.
    pub l_visited: Option<Bits>,
    /// Graph walk marker.
    pub l_map_used: Option<Bits>,
    /// Graph walk marker.
    pub l_map_done: Option<Bits>,
    /// `l_phdr` was malloc'ed.
    pub l_phdr_allocated: Bits,
    /// Soname recorded in `l_libname`.
    pub l_soname_added: Bits,
    /// Faked map (`RTLD_NOLOAD` probe).
    pub l_faked: Bits,
    /// TLS must be initialised.
    pub l_need_tls_init: Bits,
    /// An audit module.
    pub l_auditing: Bits,
    /// Audit PLT hooks requested.
    pub l_audit_any_plt: Bits,
    /// Being unloaded.
    pub l_removed: Bits,
    /// `PT_LOAD` segments are contiguous.
    pub l_contiguous: Bits,
    /// `l_initfini` was malloc'ed (libc frees it).
    pub l_free_initfini: Bits,
    /// `.dynamic` is read-only: libc adds `l_addr` to `d_ptr` itself.
    pub l_ld_readonly: Option<Bits>,
    /// `_dl_find_object` has seen the map.
    pub l_find_object_processed: Option<Bits>,
    /// In the TLS slot info list (2.41).
    pub l_tls_in_slotinfo: Option<Bits>,
    /// `RTLD_NODELETE` active.
    pub l_nodelete_active: Field,
    /// `RTLD_NODELETE` pending.
    pub l_nodelete_pending: Field,
    /// x86: the object has `JUMP_SLOT` relocations (2.41, CET).
    pub l_has_jump_slot_reloc: Option<Field>,
    /// x86 `GNU_PROPERTY` processing state.
    pub l_property: Option<Bits>,
    /// x86 CET feature bits.
    pub l_x86_feature_1_and: Option<Field>,
    /// x86 ISA level needed.
    pub l_x86_isa_1_needed: Option<Field>,
    /// `GNU_PROPERTY_1_NEEDED`.
    pub l_1_needed: Option<Field>,
    /// `DT_RPATH` directories.
    pub l_rpath_dirs: Field,
    /// Lazy-binding results (audit, profiling).
    pub l_reloc_result: Field,
    /// `DT_VERSYM`.
    pub l_versyms: Field,
    /// Directory of the object (`dlinfo(RTLD_DI_ORIGIN)`).
    pub l_origin: Field,
    /// Lowest mapped address.
    pub l_map_start: Field,
    /// End of the mapping.
    pub l_map_end: Field,
    /// End of text (removed in 2.41).
    pub l_text_end: Option<Field>,
    /// Built-in scope array.
    pub l_scope_mem: Array,
    /// Capacity of `l_scope`.
    pub l_scope_max: Field,
    /// NULL-terminated scope array.
    pub l_scope: Field,
    /// Local scope (`[0]` = `&l_searchlist`).
    pub l_local_scope: Array,
    /// Device and inode.
    pub l_file_id: Field,
    /// `DT_RUNPATH` directories.
    pub l_runpath_dirs: Field,
    /// Init order (dependencies sorted).
    pub l_initfini: Field,
    /// Init-called chain (Debian 2.36 keeps it; gone in 2.41).
    pub l_init_called_next: Option<Field>,
    /// Dependencies added at run time.
    pub l_reldeps: Field,
    /// Capacity of `l_reldeps`.
    pub l_reldepsmax: Field,
    /// Symbols were bound to this object.
    pub l_used: Field,
    /// `GNU_PROPERTY_X86_FEATURE_1_AND` / `AARCH64_FEATURE_1_AND`.
    pub l_feature_1: Field,
    /// `DT_FLAGS_1`.
    pub l_flags_1: Field,
    /// `DT_FLAGS`.
    pub l_flags: Field,
    /// Scratch index for sorting.
    pub l_idx: Field,
    /// Arch data ([`LinkMapMachine`]).
    pub l_mach: Field,
    /// One-entry lookup cache.
    pub l_lookup_cache: Field,
    /// TLS init image.
    pub l_tls_initimage: Field,
    /// Its size.
    pub l_tls_initimage_size: Field,
    /// TLS block size.
    pub l_tls_blocksize: Field,
    /// TLS alignment.
    pub l_tls_align: Field,
    /// First byte offset within alignment.
    pub l_tls_firstbyte_offset: Field,
    /// Static TLS offset.
    pub l_tls_offset: Field,
    /// TLS module id.
    pub l_tls_modid: Field,
    /// `thread_local` destructors pending (written by libc).
    pub l_tls_dtor_count: Field,
    /// `PT_GNU_RELRO` start.
    pub l_relro_addr: Field,
    /// `PT_GNU_RELRO` size.
    pub l_relro_size: Field,
    /// Load serial number.
    pub l_serial: Field,
}

/// `struct r_scope_elem`: a symbol search list.
///
/// DWARF: `struct r_scope_elem`
#[derive(Default, Clone, Copy, Debug)]
pub struct RScopeElem {
    /// `sizeof(struct r_scope_elem)`.
    pub size: u16,
    /// `struct link_map **`.
    pub r_list: Field,
    /// Number of entries.
    pub r_nlist: Field,
}

/// `struct libname_list`: the names a map answers to.
///
/// DWARF: `struct libname_list`
#[derive(Default, Clone, Copy, Debug)]
pub struct LibnameList {
    /// `sizeof(struct libname_list)`.
    pub size: u16,
    /// The name.
    pub name: Field,
    /// Next name.
    pub next: Field,
    /// Not malloc'ed.
    pub dont_free: Field,
}

/// `struct r_debug`: the debugger interface (`_r_debug`).
///
/// DWARF: `struct r_debug`
#[derive(Default, Clone, Copy, Debug)]
pub struct RDebug {
    /// `sizeof(struct r_debug)`.
    pub size: u16,
    /// Protocol version.
    pub r_version: Field,
    /// Head of the map chain.
    pub r_map: Field,
    /// Breakpoint address.
    pub r_brk: Field,
    /// `RT_CONSISTENT`/`RT_ADD`/`RT_DELETE`.
    pub r_state: Field,
    /// Loader base.
    pub r_ldbase: Field,
}

/// `struct r_debug_extended`: `r_debug` plus the next namespace's.
///
/// DWARF: `struct r_debug_extended`
#[derive(Default, Clone, Copy, Debug)]
pub struct RDebugExtended {
    /// `sizeof(struct r_debug_extended)`.
    pub size: u16,
    /// The `struct r_debug`.
    pub base: Field,
    /// Next namespace's record.
    pub r_next: Field,
}

/// `struct pthread`: the thread descriptor (x86_64: at the thread pointer;
/// aarch64: just below it).
///
/// DWARF: `struct pthread`
#[derive(Default, Clone, Copy, Debug)]
pub struct Pthread {
    /// `sizeof(struct pthread)` (`TLS_TCB_SIZE` / `TLS_PRE_TCB_SIZE`).
    pub size: u16,
    /// `header`: the whole `tcbhead_t` on x86_64, `{multiple_threads,
    /// gscope_flag}` on aarch64.
    pub header: Field,
    /// Set once a second thread exists.
    /// DWARF: `header.multiple_threads`
    pub header_multiple_threads: Field,
    /// Global scope reader flag (`THREAD_GSCOPE_WAIT`).
    /// DWARF: `header.gscope_flag`
    pub header_gscope_flag: Field,
    /// Link in `_dl_stack_used`/`_dl_stack_user`.
    pub list: Field,
    /// Kernel thread id.
    pub tid: Field,
    /// Robust mutex list.
    pub robust_prev: Field,
    /// Robust list head registered with the kernel.
    pub robust_head: Field,
    /// Cleanup handlers.
    pub cleanup: Field,
    /// Cancellation unwind buffer.
    pub cleanup_jmp_buf: Field,
    /// Cancellation state bits.
    pub cancelhandling: Field,
    /// Thread flags.
    pub flags: Field,
    /// First block of thread-specific data.
    pub specific_1stblock: Array,
    /// Second-level TSD pointers (`[0]` = `&specific_1stblock[0]`).
    pub specific: Array,
    /// Any TSD set.
    pub specific_used: Field,
    /// Debugger event reporting.
    pub report_events: Field,
    /// Stack not owned by libc (main thread: true; until 2.42).
    pub user_stack: Option<Field>,
    /// Who owns the stack (main thread: `ALLOCATE_GUARD_USER`; 2.43).
    pub stack_mode: Option<Field>,
    /// Started stopped.
    pub stopped_start: Field,
    /// Creation failed.
    pub setup_failed: Option<Field>,
    /// Descriptor lock.
    pub lock: Field,
    /// setxid synchronisation.
    pub setxid_futex: Field,
    /// Joining thread (until 2.42).
    pub joinid: Option<Field>,
    /// Join state (main thread: `THREAD_STATE_JOINABLE`; 2.43).
    pub joinstate: Option<Field>,
    /// Return value.
    pub result: Field,
    /// Scheduling parameters.
    pub schedparam: Field,
    /// Scheduling policy.
    pub schedpolicy: Field,
    /// Start function.
    pub start_routine: Field,
    /// Its argument.
    pub arg: Field,
    /// Debugger event buffer.
    pub eventbuf: Field,
    /// Debugger event chain.
    pub nextevent: Field,
    /// Unwind exception for cancellation.
    pub exc: Field,
    /// Stack block.
    pub stackblock: Field,
    /// Its size (main thread: `__libc_stack_end`).
    pub stackblock_size: Field,
    /// Guard size.
    pub guardsize: Field,
    /// Guard size as requested.
    pub reported_guardsize: Field,
    /// Priority protection data.
    pub tpp: Field,
    /// Resolver state.
    pub res: Field,
    /// Signal mask at creation.
    pub sigmask: Option<Field>,
    /// Active dl error catch frame (2.37 and later).
    pub rtld_catch: Option<Field>,
    /// C11 thread.
    pub c11: Field,
    /// Exiting.
    pub exiting: Option<Field>,
    /// Exit lock.
    pub exit_lock: Option<Field>,
    /// Per-thread libc state (strsignal buffers, ...).
    pub tls_state: Option<Field>,
    /// getrandom vDSO state (2.41).
    pub getrandom_buf: Option<Field>,
    /// Registered rseq area (2.35..2.40; moved to static TLS in 2.41).
    pub rseq_area: Option<Field>,
    /// `rseq_area.cpu_id_start`.
    /// DWARF: `rseq_area.cpu_id_start`
    pub rseq_area_cpu_id_start: Option<Field>,
    /// `rseq_area.cpu_id` (-1 uninitialised, -2 registration failed).
    /// DWARF: `rseq_area.cpu_id`
    pub rseq_area_cpu_id: Option<Field>,
    /// `rseq_area.rseq_cs`.
    /// DWARF: `rseq_area.rseq_cs`
    pub rseq_area_rseq_cs: Option<Field>,
    /// `rseq_area.flags`.
    /// DWARF: `rseq_area.flags`
    pub rseq_area_flags: Option<Field>,
}

/// `tcbhead_t`: the words at the thread pointer.
///
/// DWARF: `typedef tcbhead_t`
#[derive(Default, Clone, Copy, Debug)]
pub struct Tcbhead {
    /// `sizeof(tcbhead_t)`.
    pub size: u16,
    /// x86_64: the TCB itself (`%fs:0`).
    pub tcb: Option<Field>,
    /// DTV pointer (`&dtv[1]`).
    pub dtv: Field,
    /// x86_64: `THREAD_SELF` (`%fs:16`).
    /// DWARF: `self`
    pub self_: Option<Field>,
    /// x86_64: multiple threads flag.
    pub multiple_threads: Option<Field>,
    /// x86_64: global scope reader flag.
    pub gscope_flag: Option<Field>,
    /// x86_64: unused.
    pub sysinfo: Option<Field>,
    /// x86_64: stack protector canary (`%fs:0x28`).
    pub stack_guard: Option<Field>,
    /// x86_64: pointer mangling guard (`%fs:0x30`).
    pub pointer_guard: Option<Field>,
    /// x86_64: CET features (`%fs:0x48`).
    pub feature_1: Option<Field>,
    /// x86_64: reserved for TM.
    pub __private_tm: Option<Field>,
    /// x86_64: reserved for split stacks.
    pub __private_ss: Option<Field>,
    /// x86_64: shadow stack base.
    pub ssp_base: Option<Field>,
    /// aarch64: reserved word.
    pub private: Option<Field>,
}

/// `list_t`: nptl's doubly linked list node.
///
/// DWARF: `typedef list_t`
#[derive(Default, Clone, Copy, Debug)]
pub struct ListT {
    /// `sizeof(list_t)`.
    pub size: u16,
    /// Next node.
    pub next: Field,
    /// Previous node.
    pub prev: Field,
}

/// `struct robust_list_head`: registered with `set_robust_list`.
///
/// DWARF: `struct robust_list_head`
#[derive(Default, Clone, Copy, Debug)]
pub struct RobustListHead {
    /// `sizeof(struct robust_list_head)`.
    pub size: u16,
    /// List head.
    pub list: Field,
    /// Offset of the futex word from a list entry.
    pub futex_offset: Field,
    /// Entry being changed.
    pub list_op_pending: Field,
}

/// `pthread_mutex_t`: the layout of the three loader locks.
///
/// DWARF: `typedef pthread_mutex_t`
#[derive(Default, Clone, Copy, Debug)]
pub struct PthreadMutex {
    /// `sizeof(pthread_mutex_t)`.
    pub size: u16,
    /// Futex word.
    /// DWARF: `__data.__lock`
    pub __lock: Field,
    /// Recursion count.
    /// DWARF: `__data.__count`
    pub __count: Field,
    /// Owner tid.
    /// DWARF: `__data.__owner`
    pub __owner: Field,
    /// Users.
    /// DWARF: `__data.__nusers`
    pub __nusers: Field,
    /// Mutex kind (recursive: 1).
    /// DWARF: `__data.__kind`
    pub __kind: Field,
    /// Adaptive spin count.
    /// DWARF: `__data.__spins`
    pub __spins: Field,
    /// x86 lock elision state.
    /// DWARF: `__data.__elision`
    pub __elision: Option<Field>,
    /// Robust list node.
    /// DWARF: `__data.__list`
    pub __list: Field,
    /// Robust list previous.
    /// DWARF: `__data.__list.__prev`
    pub __list_prev: Field,
    /// Robust list next.
    /// DWARF: `__data.__list.__next`
    pub __list_next: Field,
}

/// `struct unique_sym_table`: `STB_GNU_UNIQUE` symbols of a namespace.
///
/// DWARF: `struct unique_sym_table`
#[derive(Default, Clone, Copy, Debug)]
pub struct UniqueSymTable {
    /// `sizeof(struct unique_sym_table)`.
    pub size: u16,
    /// Recursive mutex.
    pub lock: Field,
    /// Hash table.
    pub entries: Field,
    /// Its size.
    /// DWARF: `size`
    pub size_: Field,
    /// Entries used.
    pub n_elements: Field,
    /// Free function.
    pub free: Field,
}

/// `struct dtv_slotinfo_list`: a chunk of the TLS module list.
///
/// DWARF: `struct dtv_slotinfo_list`
#[derive(Default, Clone, Copy, Debug)]
pub struct DtvSlotinfoList {
    /// `sizeof(struct dtv_slotinfo_list)` (without the flexible array).
    pub size: u16,
    /// Entries in this chunk.
    pub len: Field,
    /// Next chunk.
    pub next: Field,
    /// The entries (flexible array of [`DtvSlotinfo`]).
    pub slotinfo: Array,
}

/// `struct dtv_slotinfo`: one TLS module.
///
/// DWARF: `struct dtv_slotinfo`
#[derive(Default, Clone, Copy, Debug)]
pub struct DtvSlotinfo {
    /// `sizeof(struct dtv_slotinfo)`.
    pub size: u16,
    /// Generation that added it.
    pub gen: Field,
    /// Its map.
    pub map: Field,
}

/// `dtv_t`: one DTV entry (shared with libc).
///
/// DWARF: `typedef dtv_t`
#[derive(Default, Clone, Copy, Debug)]
pub struct Dtv {
    /// `sizeof(dtv_t)`.
    pub size: u16,
    /// `dtv[-1]` (length) and `dtv[0]` (generation).
    pub counter: Field,
    /// Block address or `TLS_DTV_UNALLOCATED`.
    /// DWARF: `pointer.val`
    pub pointer_val: Field,
    /// Pointer libc passes to `free()`.
    /// DWARF: `pointer.to_free`
    pub pointer_to_free: Field,
}

/// `tls_index`: the argument of `__tls_get_addr`.
///
/// DWARF: `typedef tls_index`
#[derive(Default, Clone, Copy, Debug)]
pub struct TlsIndex {
    /// `sizeof(tls_index)`.
    pub size: u16,
    /// Module id.
    pub ti_module: Field,
    /// Offset in the block.
    pub ti_offset: Field,
}

/// `struct dl_exception`: a loader error as libc's `_dl_signal_error` builds it.
///
/// DWARF: `struct dl_exception`
#[derive(Default, Clone, Copy, Debug)]
pub struct DlException {
    /// `sizeof(struct dl_exception)`.
    pub size: u16,
    /// Object name.
    pub objname: Field,
    /// Message.
    pub errstring: Field,
    /// Buffer to free, or NULL.
    pub message_buffer: Field,
}

/// `struct r_found_version`: a symbol version to match.
///
/// DWARF: `struct r_found_version`
#[derive(Default, Clone, Copy, Debug)]
pub struct RFoundVersion {
    /// `sizeof(struct r_found_version)`.
    pub size: u16,
    /// Version name.
    pub name: Field,
    /// Its ELF hash.
    pub hash: Field,
    /// Hidden version.
    pub hidden: Field,
    /// Defining file's soname.
    pub filename: Field,
}

/// `struct dl_find_object`: the result of `_dl_find_object`.
///
/// DWARF: `struct dl_find_object`
#[derive(Default, Clone, Copy, Debug)]
pub struct DlFindObject {
    /// `sizeof(struct dl_find_object)`.
    pub size: u16,
    /// Flags (0).
    pub dlfo_flags: Field,
    /// `l_map_start`.
    pub dlfo_map_start: Field,
    /// `l_map_end`.
    pub dlfo_map_end: Field,
    /// The map.
    pub dlfo_link_map: Field,
    /// `PT_GNU_EH_FRAME` address.
    pub dlfo_eh_frame: Field,
}

/// `struct link_map_machine`: arch data in every link map.
///
/// DWARF: `struct link_map_machine`
#[derive(Default, Clone, Copy, Debug)]
pub struct LinkMapMachine {
    /// `sizeof(struct link_map_machine)`.
    pub size: u16,
    /// PLT address.
    pub plt: Field,
    /// x86_64: `.got.plt` address.
    pub gotplt: Option<Field>,
    /// TLSDESC table.
    pub tlsdesc_table: Field,
    /// aarch64: BTI could not be enabled.
    pub bti_fail: Option<Field>,
    /// aarch64: guarded control stack marking (2.41).
    pub gcs: Option<Field>,
}

/// x86 `struct cpu_features`: what every x86 IFUNC resolver reads.
///
/// DWARF: `struct cpu_features`, x86_64 only
#[derive(Default, Clone, Copy, Debug)]
pub struct X86CpuFeatures {
    /// `sizeof(struct cpu_features)`.
    pub size: u16,
    /// `struct cpu_features_basic`.
    pub basic: Field,
    /// Vendor: 0 unknown, 1 intel, 2 amd, 3 zhaoxin, 4 other.
    /// DWARF: `basic.kind`
    pub basic_kind: Field,
    /// CPUID(0).EAX.
    /// DWARF: `basic.max_cpuid`
    pub basic_max_cpuid: Field,
    /// Family (extended folded in).
    /// DWARF: `basic.family`
    pub basic_family: Field,
    /// Model (extended folded in).
    /// DWARF: `basic.model`
    pub basic_model: Field,
    /// Stepping.
    /// DWARF: `basic.stepping`
    pub basic_stepping: Field,
    /// Per-leaf raw and usable bits ([`CpuidFeatureInternal`]).
    pub features: Option<Array>,
    /// Tuning bits.
    pub preferred: Option<Array>,
    /// ISA level bits.
    pub isa_1: Option<Field>,
    /// XSAVE area for the lazy-binding trampoline.
    pub xsave_state_size: Field,
    /// Full XSAVE area.
    pub xsave_state_full_size: Field,
    /// L1 data cache size for string functions.
    pub data_cache_size: Field,
    /// Shared cache size for string functions.
    pub shared_cache_size: Field,
    /// memcpy non-temporal threshold (never 0).
    pub non_temporal_threshold: Field,
    /// memset non-temporal threshold (2.40 and later).
    pub memset_non_temporal_threshold: Option<Field>,
    /// `rep movsb` threshold.
    pub rep_movsb_threshold: Option<Field>,
    /// `rep movsb` upper bound.
    pub rep_movsb_stop_threshold: Option<Field>,
    /// `rep stosb` threshold.
    pub rep_stosb_threshold: Option<Field>,
    /// `sysconf(_SC_LEVEL1_ICACHE_SIZE)`.
    pub level1_icache_size: Option<Field>,
    /// `sysconf(_SC_LEVEL1_ICACHE_LINESIZE)`.
    pub level1_icache_linesize: Option<Field>,
    /// `sysconf(_SC_LEVEL1_DCACHE_SIZE)`.
    pub level1_dcache_size: Option<Field>,
    /// `sysconf(_SC_LEVEL1_DCACHE_ASSOC)`.
    pub level1_dcache_assoc: Option<Field>,
    /// `sysconf(_SC_LEVEL1_DCACHE_LINESIZE)`.
    pub level1_dcache_linesize: Option<Field>,
    /// `sysconf(_SC_LEVEL2_CACHE_SIZE)`.
    pub level2_cache_size: Option<Field>,
    /// `sysconf(_SC_LEVEL2_CACHE_ASSOC)`.
    pub level2_cache_assoc: Option<Field>,
    /// `sysconf(_SC_LEVEL2_CACHE_LINESIZE)`.
    pub level2_cache_linesize: Option<Field>,
    /// `sysconf(_SC_LEVEL3_CACHE_SIZE)`.
    pub level3_cache_size: Option<Field>,
    /// `sysconf(_SC_LEVEL3_CACHE_ASSOC)`.
    pub level3_cache_assoc: Option<Field>,
    /// `sysconf(_SC_LEVEL3_CACHE_LINESIZE)`.
    pub level3_cache_linesize: Option<Field>,
    /// `sysconf(_SC_LEVEL4_CACHE_SIZE)`.
    pub level4_cache_size: Option<Field>,
    /// Divisor for the non-temporal threshold (2.40 and later).
    pub cachesize_non_temporal_divisor: Option<Field>,
}

/// x86 `struct cpuid_feature_internal`: one element of `cpu_features.features[]`.
///
/// DWARF: `struct cpuid_feature_internal`, x86_64 only
#[derive(Default, Clone, Copy, Debug)]
pub struct CpuidFeatureInternal {
    /// `sizeof(struct cpuid_feature_internal)` (the array stride).
    pub size: u16,
    /// Raw `eax, ebx, ecx, edx` of the leaf.
    pub cpuid: Field,
    /// The usable subset, same order.
    pub active: Field,
}

/// aarch64 `struct cpu_features`.
///
/// DWARF: `struct cpu_features`, aarch64 only
#[derive(Default, Clone, Copy, Debug)]
pub struct Aarch64CpuFeatures {
    /// `sizeof(struct cpu_features)`.
    pub size: u16,
    /// `MIDR_EL1` (0 without `HWCAP_CPUID`).
    pub midr_el1: Field,
    /// `DC ZVA` block size (0: unusable).
    pub zva_size: Field,
    /// BTI enabled.
    pub bti: Option<Field>,
    /// MTE state (0).
    pub mte_state: Option<Field>,
    /// SVE usable.
    pub sve: Option<Field>,
    /// Prefer SVE string functions (later builds).
    pub prefer_sve_ifuncs: Option<Field>,
    /// MOPS usable.
    pub mops: Option<Field>,
}

/// `tunable_val_t`: the union of a tunable's numeric and string value.
///
/// DWARF: `typedef tunable_val_t`
#[derive(Default, Clone, Copy, Debug)]
pub struct TunableVal {
    /// `sizeof(tunable_val_t)`.
    pub size: u16,
    /// `numval` (`tunable_num_t`, an `intmax_t`).
    pub numval: Field,
    /// `strval`: a `const char *` up to 2.38, a `struct tunable_str_t` after.
    pub strval: Field,
    /// The string's first byte (2.39 and later; not NUL-terminated).
    /// DWARF: `strval.str`
    pub strval_str: Option<Field>,
    /// The string's length (2.39 and later).
    /// DWARF: `strval.len`
    pub strval_len: Option<Field>,
}

/// Most symbols a `libc.so.6` may import from its loader (the fingerprint
/// sorts them on the stack, `glibc::fingerprint`; the builds covered
/// import 11 to 22).
pub const MAX_IMPORTS: usize = 64;

/// Most tunables a build may have (ld-cah's table of values is this long).
pub const MAX_TUNABLES: usize = 64;

/// A tunable's type (`tunable_type_code_t`): the width `__tunable_get_val`
/// writes, and how bounds compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunableType {
    /// `TUNABLE_TYPE_INT_32`: an `int32_t`, bounds compare signed.
    Int32,
    /// `TUNABLE_TYPE_UINT_64`: a `uint64_t`, bounds compare unsigned.
    Uint64,
    /// `TUNABLE_TYPE_SIZE_T`: a `size_t`, bounds compare unsigned.
    SizeT,
    /// `TUNABLE_TYPE_STRING`: a string, no bounds.
    String,
}

/// What an `AT_SECURE` process does with a tunable (`tunable_seclevel_t`,
/// glibc up to 2.38; later builds ignore every tunable in secure mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunableSecurity {
    /// `TUNABLE_SECLEVEL_SXID_ERASE`: ignored, and removed from the
    /// environment the program sees.
    Erase,
    /// `TUNABLE_SECLEVEL_SXID_IGNORE`: ignored, but passed on.
    Ignore,
    /// `TUNABLE_SECLEVEL_NONE`: applied as usual.
    None,
}

/// One entry of ld.so's `tunable_list[]` as the build's ld.so ships it,
/// its names in [`Tunables`]. Numbers are the bits of glibc's
/// `tunable_num_t` (`intmax_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunable {
    /// The value's type.
    pub ty: TunableType,
    /// The default value (0 for strings: NULL).
    pub default: u64,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// Secure-mode treatment; `None` in builds without security levels.
    pub security: Option<TunableSecurity>,
    /// Where its name starts in [`Tunables::names`] (a byte offset: a name
    /// is found by id without walking the names before it).
    pub name: u16,
    /// Where its alias starts in [`Tunables::aliases`].
    pub alias: u16,
}

/// ld.so's `tunable_list[]`: the tunable whose id is `i` is entry `i` of
/// each list (`Layout::check`: they are equally long, at most
/// [`MAX_TUNABLES`], and `defs[i]` holds where name `i` and alias `i`
/// start).
#[derive(Clone, Copy, Debug)]
pub struct Tunables {
    /// Type, default, bounds and security level.
    pub defs: &'static [Tunable],
    /// Names (`glibc.malloc.check`).
    pub names: Names,
    /// The legacy environment variable that sets the tunable too
    /// (`MALLOC_CHECK_`), or an empty name.
    pub aliases: Names,
}

impl Tunables {
    /// Number of tunables.
    pub const fn len(self) -> usize {
        self.defs.len()
    }

    /// Whether the build has none.
    pub const fn is_empty(self) -> bool {
        self.defs.is_empty()
    }

    /// Every tunable: id, definition, name and alias (`""` for none).
    pub fn iter(self) -> impl Iterator<Item = (usize, &'static Tunable, &'static str, &'static str)> {
        self.defs.iter().enumerate().map(move |(id, t)| (id, t, self.names.at(t.name as usize), self.aliases.at(t.alias as usize)))
    }

    /// The definition of tunable `id`.
    pub fn get(self, id: usize) -> Option<&'static Tunable> {
        self.defs.get(id)
    }

    /// The name of tunable `id` (`""` past the end).
    pub fn name(self, id: usize) -> &'static str {
        self.get(id).map_or("", |t| self.names.at(t.name as usize))
    }

    /// The alias of tunable `id` (`""` for none, as most are: told by its
    /// first byte).
    pub fn alias(self, id: usize) -> &'static str {
        match self.get(id) {
            Some(t) if self.aliases.0.as_bytes().get(t.alias as usize).is_some_and(|&b| b != 0) => self.aliases.at(t.alias as usize),
            _ => "",
        }
    }

    /// The id of the tunable called `name` (which holds no NUL): per
    /// tunable, the byte that must end the name is looked at first, so
    /// most are passed over without a comparison.
    pub fn id_of(self, name: &[u8]) -> Option<usize> {
        let b = self.names.0.as_bytes();
        self.defs.iter().position(|t| {
            let at = t.name as usize;
            b.get(at + name.len()) == Some(&0) && b.get(at..at + name.len()) == Some(name)
        })
    }
}

/// A broken invariant of a layout table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inconsistent(pub &'static str);

/// Turns a failed condition into an error (usable in `const fn`).
macro_rules! ensure {
    ($cond:expr, $what:literal) => {
        if !($cond) {
            return Err(Inconsistent($what));
        }
    };
}

/// Sizes of optional members agree with the table they point at.
const fn opt_size_is(f: Option<Field>, size: u16) -> bool {
    match f {
        Some(f) => f.size == size,
        None => true,
    }
}

impl Layout {
    /// Cross-checks the tables of one build against each other: the facts
    /// the loader relies on when it combines them (an embedded struct has
    /// the size of its own table, arrays have the element size of theirs,
    /// arch-specific tables exist exactly on their arch, scalars the loader
    /// writes have the width it writes). Every generated table is checked
    /// at compile time with this.
    pub const fn check(&self) -> Result<(), Inconsistent> {
        // `Deref` is not `const`: the structure layouts through `t`.
        let t = self.types;
        let g = &t.rtld_global;
        let ro = &t.rtld_global_ro;
        let lm = &t.link_map;
        let ns = &t.link_namespaces;
        let pd = &t.pthread;
        let mutex = t.pthread_mutex.size;

        // `__nptl_version`, or before 2.34 (no thread_db descriptors in
        // libc) the banner's release and distributor (`2.31 Debian`).
        ensure!(
            str_eq(self.glibc_version, self.fingerprint.version)
                || (self.fingerprint.thread_db.is_empty() && starts_with_word(self.fingerprint.version, self.glibc_version)),
            "banner version != __nptl_version"
        );
        let fp = &self.fingerprint;
        ensure!(fp.imports.is_well_formed() && fp.imports.is_sorted(), "fingerprint imports not sorted");
        ensure!(fp.imports.len() <= MAX_IMPORTS, "more imports than MAX_IMPORTS");
        ensure!(
            fp.thread_db_names.is_well_formed() && fp.thread_db_names.len() == fp.thread_db.len(),
            "one name per _thread_db descriptor"
        );
        let mut i = 0;
        while i < fp.thread_db.len() {
            ensure!(fp.thread_db[i].len <= 3, "a _thread_db descriptor of more than 3 words");
            i += 1;
        }
        ensure!(self.unsecure_env.is_well_formed(), "unsecure_env not NUL-terminated");
        // Threads in libpthread (before 2.34): the stack lists, the
        // `_thread_db_*` descriptors and `__nptl_version` are libpthread's,
        // and libc locks the loader locks through hooks in `_rtld_global`.
        let libpthread = g._dl_stack_used.is_none();
        ensure!(libpthread == self.fingerprint.thread_db.is_empty(), "_thread_db descriptors exactly where libc keeps the threads");
        ensure!(
            g._dl_stack_user.is_none() == libpthread
                && g._dl_stack_cache.is_none() == libpthread
                && g._dl_stack_cache_lock.is_none() == libpthread
                && g._dl_load_tls_lock.is_none() == libpthread,
            "thread lists and _dl_load_tls_lock must come together"
        );
        ensure!(
            g._dl_rtld_lock_recursive.is_some() == libpthread && g._dl_rtld_unlock_recursive.is_some() == libpthread,
            "loader lock hooks exactly when libc has no thread lists"
        );
        ensure!(opt_size_is(g._dl_rtld_lock_recursive, 8) && opt_size_is(g._dl_rtld_unlock_recursive, 8), "lock hooks are pointers");
        ensure!(opt_size_is(g._dl_make_stack_executable_hook, 8), "_dl_make_stack_executable_hook is a pointer");
        ensure!(opt_size_is(g._dl_init_static_tls, 8) && opt_size_is(g._dl_wait_lookup_done, 8), "libpthread hooks are pointers");
        ensure!(g._dl_ns.stride == ns.size, "_dl_ns[] stride != sizeof(link_namespaces)");
        ensure!(g._dl_ns.len == 16, "DL_NNS != 16");
        ensure!(g._dl_ns.end() <= g.size as u32, "_dl_ns outside rtld_global");
        ensure!(g._dl_nns.size == 8, "_dl_nns is not a size_t");
        ensure!(g._dl_load_lock.size == mutex, "_dl_load_lock is not a pthread_mutex_t");
        ensure!(g._dl_load_write_lock.size == mutex, "_dl_load_write_lock is not a pthread_mutex_t");
        ensure!(opt_size_is(g._dl_load_tls_lock, mutex), "_dl_load_tls_lock is not a pthread_mutex_t");
        ensure!(opt_size_is(g._dl_rtld_map, lm.size), "_dl_rtld_map is not a link_map");
        ensure!(opt_size_is(g._dl_stack_used, t.list_t.size), "_dl_stack_used is not a list_t");
        ensure!(opt_size_is(g._dl_stack_user, t.list_t.size), "_dl_stack_user is not a list_t");
        ensure!(opt_size_is(g._dl_stack_cache, t.list_t.size), "_dl_stack_cache is not a list_t");
        ensure!(opt_size_is(g._dl_stack_cache_lock, 4), "_dl_stack_cache_lock is not an int");
        if let Some(f) = g._dl_stack_cache_lock {
            ensure!(f.end() <= g.size as u32, "_dl_stack_cache_lock outside rtld_global");
        }

        ensure!(ns._ns_unique_sym_table.size == t.unique_sym_table.size, "_ns_unique_sym_table size");
        ensure!(t.unique_sym_table.lock.size == mutex, "unique_sym_table.lock is not a pthread_mutex_t");
        if let Some(rx) = t.r_debug_extended {
            ensure!(rx.base.off == 0 && rx.base.size == t.r_debug.size, "r_debug_extended.base");
            ensure!(opt_size_is(ns._ns_debug, rx.size), "_ns_debug is not an r_debug_extended");
            ensure!(opt_size_is(ns._ns_debug_unused, rx.size), "_ns_debug_unused size");
        }

        ensure!(ro._dl_pagesize.size == 8, "_dl_pagesize is not a size_t");
        ensure!(opt_size_is(ro._dl_minsigstacksize, 8), "_dl_minsigstacksize is not a size_t");
        ensure!(ro._dl_initial_searchlist.size == t.r_scope_elem.size, "_dl_initial_searchlist size");
        // The static TLS size and alignment: in `_rtld_global` until 2.32,
        // then in `_rtld_global_ro`; exactly one of the two.
        match (ro._dl_tls_static_size, ro._dl_tls_static_align, g._dl_tls_static_size, g._dl_tls_static_align) {
            (Some(a), Some(b), None, None) | (None, None, Some(a), Some(b)) => {
                ensure!(a.size == 8 && b.size == 8, "static TLS sizes")
            }
            _ => return Err(Inconsistent("static TLS size and alignment not in exactly one of _rtld_global(_ro)")),
        }
        ensure!(ro._dl_naudit.end() <= ro.size as u32, "_dl_naudit outside rtld_global_ro");

        ensure!(lm.l_info.stride == 8, "l_info[] is not an array of pointers");
        // l_info[] = DT_NUM (38 since DT_RELR, with l_dt_relr_ref; 35
        // before), the arch's own tags (x86_64: 0, 4 since 2.39; aarch64:
        // 6), then 42 version/extra/value/address slots (rtld::l_info_index).
        let dt_num = if lm.l_dt_relr_ref.is_some() { 38 } else { 35 };
        ensure!(lm.l_info.len >= dt_num + 42, "l_info[] shorter than DT_NUM");
        let procnum = lm.l_info.len - dt_num - 42;
        ensure!(
            match self.arch {
                Arch::X86_64 => procnum == 0 || procnum == 4,
                Arch::Aarch64 => procnum == 6,
            },
            "l_info[] length does not fit DT_NUM and the arch's tags"
        );
        ensure!(lm.l_searchlist.size == t.r_scope_elem.size, "l_searchlist size");
        ensure!(lm.l_mach.size == t.link_map_machine.size, "l_mach size");
        ensure!(lm.l_local_scope.len == 2 && lm.l_local_scope.stride == 8, "l_local_scope[2]");
        ensure!(lm.l_serial.end() <= lm.size as u32, "l_serial outside link_map");
        ensure!(lm.l_file_id.size == 16 && lm.l_file_id.end() <= lm.size as u32, "l_file_id is not a dev_t and an ino64_t in link_map");
        ensure!(lm.l_type.width == 2, "l_type is not 2 bits");

        ensure!(pd.list.size == t.list_t.size, "pthread.list is not a list_t");
        ensure!(pd.robust_head.size == t.robust_list_head.size, "pthread.robust_head size");
        ensure!(pd.tid.size == 4, "pthread.tid is not a pid_t");
        ensure!(pd.specific_1stblock.len == 32 && pd.specific.len == 32, "PTHREAD_KEY_2NDLEVEL_SIZE");
        ensure!(opt_size_is(pd.rseq_area_cpu_id, 4), "rseq_area.cpu_id is not 32 bits");
        ensure!(t.dtv.size == 16 && t.dtv_slotinfo.size == 16, "dtv_t / dtv_slotinfo size");
        ensure!(t.dtv_slotinfo_list.slotinfo.stride == t.dtv_slotinfo.size, "slotinfo[] stride");

        let tv = &t.tunable_val;
        ensure!(tv.numval.off == 0 && tv.numval.size == 8, "tunable_val_t.numval is not an intmax_t at 0");
        ensure!(tv.strval.off == 0 && tv.size <= 16, "tunable_val_t.strval");
        match (tv.strval_str, tv.strval_len) {
            (None, None) => ensure!(tv.strval.size == 8, "tunable_val_t.strval is not a pointer"),
            (Some(s), Some(n)) => {
                ensure!(s.off == 0 && s.size == 8 && n.off == 8 && n.size == 8, "tunable_val_t.strval is not { str, len }")
            }
            _ => return Err(Inconsistent("tunable_val_t.strval has only one of str, len")),
        }
        let tun = self.tunables;
        ensure!(!tun.is_empty() && tun.len() <= MAX_TUNABLES, "more tunables than MAX_TUNABLES");
        ensure!(
            tun.names.is_well_formed() && tun.aliases.is_well_formed() && tun.names.len() == tun.len() && tun.aliases.len() == tun.len(),
            "one name and one alias per tunable"
        );
        ensure!(starts_are(tun.defs, tun.names, false) && starts_are(tun.defs, tun.aliases, true), "tunable name offsets");
        let mut i = 0;
        while i < tun.len() {
            let d = &tun.defs[i];
            ensure!((d.security.is_some()) == (tun.defs[0].security.is_some()), "security levels on some tunables only");
            if let TunableType::String = d.ty {
                ensure!(d.default == 0, "a string tunable with a default");
            }
            i += 1;
        }

        match self.arch {
            Arch::X86_64 => {
                // The TCB is `struct pthread` itself, its first member the tcbhead_t.
                ensure!(pd.header.off == 0 && pd.header.size == t.tcbhead.size, "x86_64 pthread.header");
                ensure!(t.tcbhead.tcb.is_some() && t.tcbhead.self_.is_some(), "x86_64 tcbhead_t");
                ensure!(t.aarch64_cpu_features.is_none(), "aarch64 cpu_features on x86_64");
                ensure!(ro._dl_aarch64_cpu_features.is_none(), "_dl_aarch64_cpu_features on x86_64");
                match (t.x86_cpu_features, t.cpuid_feature_internal, ro._dl_x86_cpu_features) {
                    (Some(cf), el, Some(f)) => {
                        ensure!(f.size == cf.size, "_dl_x86_cpu_features size");
                        // Before 2.33 neither `features[]` nor its element type.
                        match (cf.features, el) {
                            (Some(features), Some(el)) => {
                                ensure!(features.stride == el.size, "features[] stride");
                                ensure!(el.cpuid.size == 16 && el.active.size == 16, "cpuid registers");
                            }
                            (None, None) => {}
                            _ => return Err(Inconsistent("cpu_features.features[] without cpuid_feature_internal")),
                        }
                        ensure!(cf.non_temporal_threshold.size == 8, "non_temporal_threshold size");
                    }
                    _ => return Err(Inconsistent("x86_64 without cpu_features")),
                }
            }
            Arch::Aarch64 => {
                ensure!(t.tcbhead.size == 16, "aarch64 tcbhead_t is not 16 bytes");
                ensure!(t.tcbhead.dtv.off == 0, "aarch64 tcbhead_t.dtv");
                ensure!(t.x86_cpu_features.is_none(), "x86 cpu_features on aarch64");
                ensure!(ro._dl_x86_cpu_features.is_none(), "_dl_x86_cpu_features on aarch64");
                match (t.aarch64_cpu_features, ro._dl_aarch64_cpu_features) {
                    (Some(cf), Some(f)) => {
                        ensure!(f.size == cf.size, "_dl_aarch64_cpu_features size")
                    }
                    _ => return Err(Inconsistent("aarch64 without cpu_features")),
                }
            }
        }
        Ok(())
    }
}

/// Whether `defs[i].name` (`alias` with `aliases`) is where name `i` of
/// `names` starts, for every `i`. (Out of line, like the other loops of
/// `check`, which a loader runs only for an installed table.)
#[inline(never)]
const fn starts_are(defs: &[Tunable], names: Names, aliases: bool) -> bool {
    let b = names.0.as_bytes();
    let (mut i, mut start, mut at) = (0, 0, 0);
    while at < b.len() {
        if b[at] == 0 {
            if i >= defs.len() {
                return false;
            }
            let off = if aliases { defs[i].alias } else { defs[i].name };
            if off as usize != start {
                return false;
            }
            i += 1;
            start = at + 1;
        }
        at += 1;
    }
    true
}

/// Whether `s` is `word` followed by a space and more, in a `const fn`.
const fn starts_with_word(s: &str, word: &str) -> bool {
    let (s, w) = (s.as_bytes(), word.as_bytes());
    if s.len() <= w.len() + 1 || s[w.len()] != b' ' {
        return false;
    }
    let mut i = 0;
    while i < w.len() {
        if s[i] != w[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `a == b` in a `const fn`.
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glibc::layouts;

    /// The one table of a glibc version for an arch.
    fn table(version: &str, arch: Arch) -> &'static Layout {
        let mut found = layouts::ALL.iter().filter(|l| l.glibc_version == version && l.arch == arch);
        let l = found.next().unwrap_or_else(|| panic!("no table for {version} {arch:?}"));
        assert!(found.next().is_none(), "two tables for {version} {arch:?}");
        l
    }

    /// Debian 12 (`2.36-9+deb12u14`) x86_64, against the pahole numbers of
    /// pahole run on that package's debug info (independently of the xtask).
    #[test]
    fn bookworm_x86_64_matches_pahole() {
        let l = table("2.36", Arch::X86_64);

        let g = &l.rtld_global;
        assert_eq!(g.size, 4336);
        assert_eq!(g._dl_ns, Array { off: 0, stride: 160, len: 16 });
        assert_eq!(g._dl_nns, Field { off: 2560, size: 8 });
        assert_eq!(g._dl_load_lock, Field { off: 2568, size: 40 });
        assert_eq!(g._dl_load_write_lock.off, 2608);
        assert_eq!(g._dl_load_adds.off, 2688);
        assert_eq!(g._dl_all_dirs.off, 2728);
        assert_eq!(g._dl_rtld_map, Some(Field { off: 2736, size: 1192 }));
        assert_eq!(g._dl_x86_feature_1.map(|f| f.off), Some(4184));
        assert_eq!(g._dl_stack_flags.map(|f| f.off), Some(4192));
        assert_eq!(g._dl_tls_dtv_slotinfo_list.off, 4208);
        assert_eq!(g._dl_initial_dtv.off, 4240);
        assert_eq!(g._dl_stack_used.unwrap().off, 4264);
        assert_eq!(g._dl_stack_user.unwrap().off, 4280);
        assert_eq!(g._dl_stack_cache.unwrap().off, 4296);
        assert_eq!(g._dl_stack_cache_lock, Some(Field { off: 4328, size: 4 }));
        assert_eq!(g._dl_aarch64_gcs, None);

        let ns = &l.link_namespaces;
        assert_eq!(ns.size, 160);
        assert_eq!(ns._ns_nloaded.off, 8);
        assert_eq!(ns.libc_map.unwrap().off, 32);
        assert_eq!(ns._ns_debug, Some(Field { off: 112, size: 48 }));

        let ro = &l.rtld_global_ro;
        assert_eq!(ro.size, 896);
        assert_eq!(ro._dl_pagesize.off, 24);
        assert_eq!(ro._dl_minsigstacksize.unwrap().off, 32);
        assert_eq!(ro._dl_fpu_control, Field { off: 88, size: 2 });
        assert_eq!(ro._dl_hwcap.off, 96);
        assert_eq!(ro._dl_auxv.off, 104);
        assert_eq!(ro._dl_x86_cpu_features, Some(Field { off: 112, size: 480 }));
        assert_eq!(ro._dl_x86_platforms.map(|f| f.off), Some(619));
        assert_eq!(ro._dl_tls_static_size.unwrap().off, 672);
        assert_eq!(ro._dl_tls_static_align.unwrap().off, 680);
        assert_eq!(ro._dl_init_all_dirs.off, 712);
        assert_eq!(ro._dl_sysinfo_map.off, 728);
        assert_eq!(ro._dl_vdso_getcpu.map(|f| f.off), Some(760));
        assert_eq!(ro._dl_hwcap2.off, 776);
        assert_eq!(ro._dl_lookup_symbol_x.off, 808);
        assert_eq!(ro._dl_find_object.unwrap().off, 864);
        assert_eq!(ro._dl_naudit.off, 888);

        let lm = &l.link_map;
        assert_eq!(lm.size, 1192);
        assert_eq!(lm.l_info, Array { off: 64, stride: 8, len: 80 });
        assert_eq!(lm.l_phdr.off, 704);
        assert_eq!(lm.l_phnum, Field { off: 720, size: 2 });
        assert_eq!(lm.l_loader.off, 760);
        assert_eq!(lm.l_gnu_buckets.off, 800);
        assert_eq!(lm.l_chain.off, 800);
        assert_eq!(lm.l_gnu_chain_zero.off, 808);
        // pahole: "820 (bit 0) l_type:2", "(bit 19) l_contiguous", "(bit 21) l_ld_readonly"
        assert_eq!(lm.l_type.bit_offset(), 820 * 8);
        assert_eq!(lm.l_type.width, 2);
        assert_eq!(lm.l_relocated.bit_offset(), 820 * 8 + 3);
        assert_eq!(lm.l_init_called.bit_offset(), 820 * 8 + 4);
        assert_eq!(lm.l_contiguous.bit_offset(), 820 * 8 + 19);
        assert_eq!(lm.l_free_initfini.bit_offset(), 820 * 8 + 20);
        assert_eq!(lm.l_ld_readonly.unwrap().bit_offset(), 820 * 8 + 21);
        assert_eq!(lm.l_find_object_processed.unwrap().bit_offset(), 820 * 8 + 22);
        assert_eq!(lm.l_nodelete_active.off, 823);
        assert_eq!(lm.l_property.map(|b| b.bit_offset()), Some(824 * 8 + 8));
        assert_eq!(lm.l_origin.off, 872);
        assert_eq!(lm.l_map_start.off, 880);
        assert_eq!(lm.l_map_end.off, 888);
        assert_eq!(lm.l_text_end.map(|f| f.off), Some(896));
        assert_eq!(lm.l_scope.off, 944);
        assert_eq!(lm.l_local_scope.off, 952);
        assert_eq!(lm.l_initfini.off, 1000);
        assert_eq!(lm.l_init_called_next.map(|f| f.off), Some(1008));
        assert_eq!(lm.l_tls_offset.off, 1144);
        assert_eq!(lm.l_tls_modid.off, 1152);
        assert_eq!(lm.l_tls_dtor_count.off, 1160);
        assert_eq!(lm.l_serial.off, 1184);

        let pd = &l.pthread;
        assert_eq!(pd.size, 2368);
        assert_eq!(pd.header, Field { off: 0, size: 704 });
        assert_eq!(pd.list.off, 704);
        assert_eq!(pd.tid.off, 720);
        assert_eq!(pd.robust_prev.off, 728);
        assert_eq!(pd.robust_head.off, 736);
        assert_eq!(pd.specific_1stblock, Array { off: 784, stride: 16, len: 32 });
        assert_eq!(pd.specific.off, 1296);
        assert_eq!(pd.report_events.off, 1553);
        assert_eq!(pd.user_stack.map(|f| f.off), Some(1554));
        assert_eq!(pd.start_routine.off, 1592);
        assert_eq!(pd.stackblock_size.off, 1688);
        assert_eq!(pd.rseq_area, Some(Field { off: 2336, size: 32 }));
        assert_eq!(pd.rseq_area_cpu_id, Some(Field { off: 2340, size: 4 }));
        assert_eq!(pd.rseq_area_flags.map(|f| f.off), Some(2352));
        assert_eq!(pd.rtld_catch, None);

        let tcb = &l.tcbhead;
        assert_eq!(tcb.size, 704);
        assert_eq!(tcb.self_.map(|f| f.off), Some(16));
        assert_eq!(tcb.multiple_threads.map(|f| f.off), Some(24));
        assert_eq!(tcb.stack_guard.map(|f| f.off), Some(40));
        assert_eq!(tcb.pointer_guard.map(|f| f.off), Some(48));
        assert_eq!(tcb.feature_1.map(|f| f.off), Some(72));

        let cf = l.x86_cpu_features.unwrap();
        assert_eq!(cf.size, 480);
        assert_eq!(cf.features, Some(Array { off: 20, stride: 32, len: 9 }));
        assert_eq!(cf.preferred, Some(Array { off: 308, stride: 4, len: 1 }));
        assert_eq!(cf.isa_1.unwrap().off, 312);
        assert_eq!(cf.xsave_state_size.off, 320);
        assert_eq!(cf.non_temporal_threshold.off, 352);
        assert_eq!(cf.rep_movsb_stop_threshold.unwrap().off, 368);
        assert_eq!(cf.level4_cache_size.unwrap().off, 472);
        assert_eq!(cf.memset_non_temporal_threshold, None);

        assert_eq!(l.pthread_mutex.size, 40);
        assert_eq!(l.pthread_mutex.__kind.off, 16);
        assert_eq!(l.pthread_mutex.__elision.map(|f| f.off), Some(22));
        assert_eq!(l.pthread_mutex.__list_next.off, 32);
        assert_eq!(l.unique_sym_table.size, 72);
        assert_eq!(l.r_debug.size, 40);
        assert_eq!(l.r_debug_extended.map(|r| (r.size, r.r_next.off)), Some((48, 40)));
        assert_eq!(l.dl_find_object.unwrap().dlfo_eh_frame.off, 32);
        assert_eq!(l.dl_find_object.unwrap().size, 96);
        assert_eq!(l.link_map_machine.gotplt.map(|f| f.off), Some(8));
        assert_eq!(l.r_found_version.filename.off, 16);
        assert_eq!(l.libname_list.dont_free.off, 16);
    }

    /// Debian 12 aarch64, against pahole's numbers for that build.
    #[test]
    fn bookworm_aarch64_matches_pahole() {
        let l = table("2.36", Arch::Aarch64);
        assert_eq!(l.rtld_global.size, 4520);
        assert_eq!(l.rtld_global._dl_ns.stride, 168);
        assert_eq!(l.rtld_global._dl_nns.off, 2688);
        assert_eq!(l.rtld_global._dl_load_lock, Field { off: 2696, size: 48 });
        assert_eq!(l.rtld_global._dl_rtld_map, Some(Field { off: 2888, size: 1232 }));
        assert_eq!(l.rtld_global._dl_stack_flags.map(|f| f.off), Some(4376));
        assert_eq!(l.rtld_global._dl_x86_feature_1, None);
        assert_eq!(l.rtld_global._dl_stack_user.unwrap().off, 4464);
        assert_eq!(l.rtld_global._dl_stack_cache_lock.unwrap().off, 4512);
        assert_eq!(l.rtld_global_ro.size, 672);
        assert_eq!(l.rtld_global_ro._dl_fpu_control, Field { off: 88, size: 4 });
        assert_eq!(l.rtld_global_ro._dl_aarch64_cpu_features, Some(Field { off: 112, size: 16 }));
        assert_eq!(l.rtld_global_ro._dl_tls_static_size.unwrap().off, 464);
        assert_eq!(l.rtld_global_ro._dl_vdso_time, None);
        assert_eq!(l.rtld_global_ro._dl_hwcap2.off, 552);
        assert_eq!(l.rtld_global_ro._dl_find_object.unwrap().off, 640);
        assert_eq!(l.link_map.size, 1232);
        assert_eq!(l.link_map.l_info.len, 86);
        assert_eq!(l.link_map.l_phdr.off, 752);
        assert_eq!(l.link_map.l_ld_readonly.unwrap().bit_offset(), 868 * 8 + 21);
        assert_eq!(l.link_map.l_property, None);
        assert_eq!(l.link_map.l_origin.off, 912);
        assert_eq!(l.link_map.l_tls_modid.off, 1192);
        assert_eq!(l.pthread.size, 1856);
        assert_eq!(l.pthread.header_gscope_flag.off, 4);
        assert_eq!(l.pthread.tid.off, 208);
        assert_eq!(l.pthread.specific.off, 784);
        assert_eq!(l.pthread.rseq_area, Some(Field { off: 1824, size: 32 }));
        assert_eq!(l.tcbhead.size, 16);
        assert_eq!(l.tcbhead.tcb, None);
        assert_eq!(l.pthread_mutex.size, 48);
        assert_eq!(l.pthread_mutex.__spins.size, 4);
        assert_eq!(l.pthread_mutex.__elision, None);
        assert_eq!(l.unique_sym_table.size, 80);
        let cf = l.aarch64_cpu_features.unwrap();
        assert_eq!(cf.size, 16);
        assert_eq!(cf.mops.unwrap().off, 15);
        assert_eq!(cf.prefer_sve_ifuncs, None);
        assert_eq!(l.link_map_machine.bti_fail.map(|f| f.off), Some(16));
    }

    #[test]
    fn every_table_is_consistent_and_unique() {
        assert!(layouts::ALL.len() >= 4);
        for (i, l) in layouts::ALL.iter().enumerate() {
            assert_eq!(l.check(), Ok(()), "{} {:?}", l.glibc_version, l.arch);
            // Two tables with one fingerprint: the second could never be chosen.
            for other in &layouts::ALL[i + 1..] {
                let (a, b) = (&l.fingerprint, &other.fingerprint);
                assert!(
                    l.arch != other.arch || a.version != b.version || a.imports != b.imports || !a.descriptors().eq(b.descriptors()),
                    "two tables for {} {:?} with one fingerprint",
                    l.glibc_version,
                    l.arch
                );
            }
        }
    }

    #[test]
    fn a_file_id_other_than_a_dev_and_an_inode_inside_link_map_is_refused() {
        // `fill_link_maps` writes two words at `l_file_id`: a table that
        // says otherwise is refused before anything is written.
        let with = |edit: fn(&mut Types)| {
            let l = layouts::ALL[0];
            let mut types = l.types.clone();
            edit(&mut types);
            let f = &l.fingerprint;
            let fingerprint =
                Fingerprint { version: f.version, imports: f.imports, thread_db: f.thread_db, thread_db_names: f.thread_db_names };
            let types = alloc::boxed::Box::leak(alloc::boxed::Box::new(types));
            Layout { glibc_version: l.glibc_version, arch: l.arch, fingerprint, types, tunables: l.tunables, unsecure_env: l.unsecure_env }
                .check()
        };
        assert_eq!(with(|_| {}), Ok(()));
        let refused = Err(Inconsistent("l_file_id is not a dev_t and an ino64_t in link_map"));
        assert_eq!(with(|t| t.link_map.l_file_id.size = 8), refused);
        assert_eq!(with(|t| t.link_map.l_file_id.off = t.link_map.size - 8), refused);
    }

    #[test]
    fn names() {
        let n = Names("__libc_stack_end\0_dl_argv\0_rtld_global\0_rtld_global_ro\0");
        assert_eq!(n.len(), 4);
        assert!(n.is_well_formed() && n.is_sorted());
        assert_eq!(n.iter().nth(1), Some("_dl_argv"));
        assert_eq!((n.at(0), n.at(17), n.at(19), n.at(1000)), ("__libc_stack_end", "_dl_argv", "l_argv", ""));
        let long = Names("a\0bcdefghijklmnopqrstuvwxyz\0\0\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\0");
        for at in 0..long.0.len() {
            if long.0.is_char_boundary(at) {
                assert_eq!(long.at(at), long.0[at..].split('\0').next().unwrap(), "{at}");
            }
        }
        assert_eq!(Names("no terminator").at(3), "terminator");
        assert!(n.contains(b"_rtld_global_ro") && !n.contains(b"_rtld_globa") && !n.contains(b""));
        assert!(!Names("b\0a\0").is_sorted() && !Names("a\0a\0").is_sorted() && !Names("ab\0a\0").is_sorted());
        assert!(Names("a\0ab\0b\0").is_sorted() && Names("").is_sorted());
        // Empty names count (an alias list), the empty list has none.
        let aliases = Names("\0MALLOC_CHECK_\0\0");
        assert_eq!(aliases.iter().collect::<Vec<_>>(), ["", "MALLOC_CHECK_", ""]);
        assert_eq!((aliases.len(), Names("").len()), (3, 0));
        assert!(!Names("a\0b").is_well_formed());
        assert_eq!(format!("{n:?}"), r#"["__libc_stack_end", "_dl_argv", "_rtld_global", "_rtld_global_ro"]"#);
        assert_eq!(ThreadDb::new(&[25]).words(), [25]);
        assert_eq!(ThreadDb::new(&[64, 1, 8]).words(), [64, 1, 8]);
    }

    #[test]
    fn bits_get_and_set() {
        // A 2-bit field straddling a byte boundary, like x86_64 l_property.
        let b = Bits { off: 1, bit: 7, width: 2 };
        let mut rec = [0xffu8; 4];
        assert_eq!(b.get(&rec), Some(3));
        b.set(&mut rec, 1).unwrap();
        assert_eq!(rec, [0xff, 0xff, 0xfe, 0xff]);
        assert_eq!(b.get(&rec), Some(1));
        assert_eq!(b.get(&rec[..2]), None);
        let one = Bits { off: 0, bit: 5, width: 1 };
        let mut rec = [0u8; 1];
        one.set(&mut rec, 1).unwrap();
        assert_eq!(rec, [0x20]);
        assert_eq!(Array { off: 8, stride: 4, len: 2 }.at(2), None);
    }
}
