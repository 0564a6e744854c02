//! Rewriting an executable: the closure lock note and `PT_INTERP`.
//!
//! Done with `object`'s ELF builder, which re-emits the whole file from a
//! parsed model (symbol and string tables are regenerated, everything the
//! loader maps keeps its address). The changes:
//!
//! - the lock goes into an allocated `SHT_NOTE` section `.note.cah`,
//!   covered by its own `PT_NOTE`, inside a new read-only `PT_LOAD` placed
//!   after every existing segment (so the loader finds it in memory through
//!   the program headers, and glibc, which ignores unknown notes, runs the
//!   program unchanged);
//! - the two new program headers need room after the existing ones. The
//!   sections there (`.interp`, notes, and if need be the dynamic symbol,
//!   string, hash and version tables, which are only reached through the
//!   dynamic section the builder rewrites) move into the new segment, and
//!   the segments that described them (`PT_INTERP`, `PT_NOTE`,
//!   `PT_GNU_PROPERTY`) follow them;
//! - the interpreter is written in place when it fits (padded with NULs), or
//!   moves to the new segment;
//! - patching a patched file rewrites the note (and the interpreter) in the
//!   existing segment, laid out again from its start, so patching twice
//!   gives the same bytes.
//!
//! The input is untrusted: before the builder sees it, [`check_layout`]
//! requires every header to describe ranges inside the file and inside a
//! 64-bit address space, with sane alignments, so neither the builder's
//! arithmetic nor ours can overflow; and the output is written into a
//! buffer with a size cap, so no header value can make it allocate more
//! than a small multiple of the input.

use anyhow::{anyhow, bail, Context, Result};
use object::build::elf::{Builder, Dynamic, SectionData, SectionId};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::write::WritableBuffer;
use object::Endianness;

use ld_cah::verify::lock::SECTION_NAME;

/// What to do to the file.
#[derive(Clone, Debug)]
pub struct Patch {
    /// The complete note (header, name, descriptor), from `Lock::to_note`.
    pub note: Vec<u8>,
    /// The new interpreter (without NUL), or `None` to keep it.
    pub interp: Option<Vec<u8>>,
}

/// What was done, for messages.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The file had no `PT_INTERP`, so the interpreter was not set.
    pub no_interp: bool,
    /// Whether the file already carried a lock section.
    pub had_lock: bool,
}

/// Program headers' worth of free space left after the table.
const SPARE_PHDRS: usize = 2;

fn movable(b: &Builder<'_>, id: SectionId) -> bool {
    let s = b.sections.get(id);
    if s.sh_type == elf::SHT_NOBITS {
        return false;
    }
    if Some(id) == b.interp_section() {
        return true;
    }
    matches!(
        s.data,
        SectionData::Note(_)
            | SectionData::DynamicSymbol
            | SectionData::DynamicString
            | SectionData::Hash
            | SectionData::GnuHash
            | SectionData::GnuVersym
            | SectionData::GnuVerdef
            | SectionData::GnuVerneed
    ) && s.name.as_slice() != SECTION_NAME.as_bytes()
}

fn section_name(b: &Builder<'_>, id: SectionId) -> String {
    String::from_utf8_lossy(b.sections.get(id).name.as_slice()).into_owned()
}

/// Highest end address (`addr + size`) a section or segment may have: more
/// than any user address space (57 bits with 5-level paging), and far
/// enough from 2^64 that no sum of two such values overflows.
const MAX_ADDR: u64 = 1 << 57;

/// Largest section or segment alignment accepted (real files use at most
/// 2 MiB, for huge pages).
const MAX_ALIGN: u64 = 1 << 30;

/// Checks, before the builder reads `data`, that every program and section
/// header describes a range inside the file (`SHT_NOBITS` sections and
/// memory sizes: inside [`MAX_ADDR`]) with an alignment that is 0 or a
/// power of two up to [`MAX_ALIGN`], and that the program headers follow
/// the ELF header.
pub fn check_layout(data: &[u8]) -> Result<()> {
    let header = elf::FileHeader64::<Endianness>::parse(data).map_err(|e| anyhow!("not a 64-bit ELF file: {e}"))?;
    let endian = header.endian().map_err(|e| anyhow!("{e}"))?;
    if endian != Endianness::Little {
        bail!("big-endian ELF files are not supported");
    }
    let len = data.len() as u64;
    let in_file = |off: u64, size: u64| off.checked_add(size).is_some_and(|end| end <= len);
    let in_space = |addr: u64, size: u64| addr.checked_add(size).is_some_and(|end| end <= MAX_ADDR);
    let aligned = |a: u64| a == 0 || (a.is_power_of_two() && a <= MAX_ALIGN);
    let phdrs = header.program_headers(endian, data).map_err(|e| anyhow!("bad program headers: {e}"))?;
    if !phdrs.is_empty() && header.e_phoff(endian) != 64 {
        bail!("the program headers do not follow the ELF header (e_phoff {:#x})", header.e_phoff(endian));
    }
    for (i, p) in phdrs.iter().enumerate() {
        let (off, filesz, memsz) = (p.p_offset(endian), p.p_filesz(endian), p.p_memsz(endian));
        if !in_file(off, filesz) {
            bail!("program header {i} lies outside the file (offset {off:#x}, size {filesz:#x})");
        }
        if !in_space(p.p_vaddr(endian), memsz) || !in_space(p.p_paddr(endian), memsz) {
            bail!("program header {i}: address range out of bounds");
        }
        if p.p_type(endian) == elf::PT_LOAD && filesz > memsz {
            bail!("program header {i}: file size larger than memory size");
        }
        if !aligned(p.p_align(endian)) {
            bail!("program header {i}: bad alignment {:#x}", p.p_align(endian));
        }
    }
    let sections = header.section_headers(endian, data).map_err(|e| anyhow!("bad section headers: {e}"))?;
    for (i, s) in sections.iter().enumerate() {
        let (off, size) = (s.sh_offset(endian), s.sh_size(endian));
        if s.sh_type(endian) != elf::SHT_NOBITS && !in_file(off, size) {
            bail!("section {i} lies outside the file (offset {off:#x}, size {size:#x})");
        }
        if !in_space(s.sh_addr(endian), size) {
            bail!("section {i}: address range out of bounds");
        }
        if !aligned(s.sh_addralign(endian)) {
            bail!("section {i}: bad alignment {:#x}", s.sh_addralign(endian));
        }
    }
    Ok(())
}

/// The output buffer: a `Vec` that refuses to grow past `limit` bytes (the
/// builder reserves the whole size first, so a refusal is an error before
/// anything large is allocated).
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    over: bool,
}

impl WritableBuffer for Capped {
    fn len(&self) -> usize {
        self.buf.len()
    }

    fn reserve(&mut self, size: usize) -> Result<(), ()> {
        if size > self.limit {
            self.over = true;
            return Err(());
        }
        self.buf.try_reserve(size).map_err(|_| ())
    }

    fn resize(&mut self, new_len: usize) {
        if new_len > self.limit {
            self.over = true;
        } else {
            self.buf.resize(new_len, 0);
        }
    }

    fn write_bytes(&mut self, val: &[u8]) {
        if self.buf.len().saturating_add(val.len()) > self.limit {
            self.over = true;
        } else {
            self.buf.extend_from_slice(val);
        }
    }
}

/// The largest patched file accepted for an input of `len` bytes: the
/// patch adds the note, the moved sections (part of the input) and some
/// alignment padding.
fn output_limit(len: usize) -> usize {
    len.saturating_mul(2).saturating_add(16 << 20)
}

/// Applies `patch` to the ELF image `data` and returns the new image.
///
/// The builder does not reproduce every input table as it read it: it
/// drops version needs no symbol uses and numbers the remaining version
/// indices of `.gnu.version_r` again, and that numbering changes once more
/// when its own output is read back (glibc-built programs list their
/// version needs in descending index order, and the dropped one leaves a
/// gap). So the patch is applied a second time to
/// its own result, which is a fixed point: patching a patched file gives
/// its bytes back, and a second `cah patch --root` writes nothing.
pub fn apply(data: &[u8], patch: &Patch) -> Result<(Vec<u8>, Report)> {
    let (once, report) = apply_once(data, patch)?;
    if once == data {
        return Ok((once, report));
    }
    let (twice, _) = apply_once(&once, patch)?;
    Ok((twice, report))
}

fn apply_once(data: &[u8], patch: &Patch) -> Result<(Vec<u8>, Report)> {
    check_layout(data)?;
    let mut b = Builder::read(data).map_err(|e| anyhow!("cannot rewrite this ELF file: {e}"))?;
    if !b.is_64 {
        bail!("only 64-bit ELF files can be patched");
    }
    // The builder re-emits the hash tables with the input's header values
    // (it divides by the bucket counts, masks with the bloom count and
    // shifts by the bloom shift): they must be what glibc requires.
    let has = |what: fn(&SectionData<'_>) -> bool| b.sections.iter().any(|s| what(&s.data));
    if has(|d| matches!(d, SectionData::Hash)) && b.hash_bucket_count == 0 {
        bail!(".hash: no buckets");
    }
    if has(|d| matches!(d, SectionData::GnuHash))
        && (b.gnu_hash_bucket_count == 0 || !b.gnu_hash_bloom_count.is_power_of_two() || b.gnu_hash_bloom_shift >= 32)
    {
        bail!(
            ".gnu.hash: bad header ({} buckets, {} bloom words, bloom shift {})",
            b.gnu_hash_bucket_count,
            b.gnu_hash_bloom_count,
            b.gnu_hash_bloom_shift
        );
    }
    if b.segments.is_empty() {
        bail!("no program headers (not an executable or shared library)");
    }
    let mut report = Report::default();
    // The builder drops the DT_NULL entries that pad the dynamic section
    // after its terminator; put them back so the section keeps its size
    // (PT_DYNAMIC still says that size, and tools use the spare entries).
    if let Some(id) = b.dynamic_section() {
        // sh_size lies inside the file (check_layout), so this is bounded.
        let entries = usize::try_from(b.sections.get(id).sh_size / 16).unwrap_or(0);
        if let Some(dynamics) = b.dynamic_data_mut() {
            while dynamics.len() + 1 < entries {
                dynamics.push(Dynamic::Integer { tag: elf::DT_NULL, val: 0 });
            }
        }
    }
    b.set_section_sizes();

    // The lock section: reuse the one a previous patch added, or add one.
    let existing = b
        .sections
        .iter()
        .find(|s| s.name.as_slice() == SECTION_NAME.as_bytes() && s.sh_type == elf::SHT_NOTE && s.is_alloc())
        .map(|s| s.id());
    report.had_lock = existing.is_some();
    let note_id = match existing {
        Some(id) => id,
        None => {
            let s = b.sections.add();
            s.name = SECTION_NAME.as_bytes().to_vec().into();
            s.sh_type = elf::SHT_NOTE;
            s.sh_flags = u64::from(elf::SHF_ALLOC);
            s.sh_addralign = 4;
            s.sh_offset = 0;
            s.id()
        }
    };
    {
        let s = b.sections.get_mut(note_id);
        s.data = SectionData::Note(patch.note.clone().into());
        s.sh_size = patch.note.len() as u64;
    }
    // The segment a previous patch added (the PT_LOAD holding the note).
    let our_load = existing.and_then(|id| b.segments.iter().find(|seg| seg.is_load() && seg.sections.contains(&id)).map(|seg| seg.id()));
    if existing.is_some() && our_load.is_none() {
        bail!("{SECTION_NAME} is not inside a PT_LOAD segment; patch the original file instead");
    }

    // Sections that must move into our segment.
    let mut to_move: Vec<SectionId> = Vec::new();

    // The interpreter.
    if let Some(interp) = &patch.interp {
        match b.interp_section() {
            None => report.no_interp = true,
            Some(id) => {
                let mut bytes = interp.clone();
                bytes.push(0);
                let s = b.sections.get_mut(id);
                if s.sh_type == elf::SHT_NOBITS || !matches!(s.data, SectionData::Data(_)) {
                    bail!("PT_INTERP does not cover an ordinary data section");
                }
                let in_our_segment = our_load.is_some_and(|seg| b.segments.get(seg).sections.contains(&id));
                if (bytes.len() as u64) <= s.sh_size {
                    // sh_size lies inside the file (check_layout).
                    bytes.resize(usize::try_from(s.sh_size).context("interpreter section too large")?, 0);
                } else if !in_our_segment {
                    to_move.push(id);
                }
                s.sh_size = bytes.len() as u64;
                s.data = SectionData::Data(bytes.into());
            }
        }
    }

    // Room for the new program headers, and for SPARE_PHDRS more: other
    // tools (patchelf, which may be used to set the interpreter back) add
    // a program header of their own and assume the space after the table
    // is free.
    let added_segments = if our_load.is_none() { 2 } else { 0 };
    let phnum = b.segments.iter().count() + added_segments + SPARE_PHDRS;
    let ph_end = b.header.e_phoff.saturating_add((phnum * b.class().program_header_size()) as u64);
    let first_load = b
        .segments
        .iter()
        .filter(|seg| seg.is_load() && seg.contains_offset(b.header.e_phoff))
        .map(|seg| (seg.p_offset + seg.p_filesz, seg.id()))
        .next();
    if let Some((end, _)) = first_load {
        if ph_end > end {
            bail!("no room for two more program headers in the first segment");
        }
    }
    for s in b.sections.iter() {
        if s.is_alloc() && s.sh_type != elf::SHT_NOBITS && s.sh_offset != 0 && s.sh_offset < ph_end && s.sh_size > 0 {
            if our_load.is_some_and(|seg| b.segments.get(seg).sections.contains(&s.id())) {
                continue;
            }
            if !to_move.contains(&s.id()) {
                to_move.push(s.id());
            }
        }
    }
    // A moved section takes the other sections of its non-PT_LOAD segments
    // with it, so each such segment stays one contiguous range.
    loop {
        let mut more = Vec::new();
        for seg in b.segments.iter() {
            if seg.is_load() || seg.p_type == elf::PT_PHDR {
                continue;
            }
            if seg.sections.iter().any(|id| to_move.contains(id)) {
                for id in &seg.sections {
                    if !to_move.contains(id) && !more.contains(id) && *id != note_id {
                        more.push(*id);
                    }
                }
            }
        }
        if more.is_empty() {
            break;
        }
        to_move.extend(more);
    }
    for &id in &to_move {
        if !movable(&b, id) {
            bail!("section {} lies where the program headers must grow and cannot be moved", section_name(&b, id));
        }
    }
    to_move.sort_by_key(|&id| (b.sections.get(id).sh_addr, b.sections.get(id).sh_offset));

    // Take moved sections out of the segments' lists (the PT_LOAD that held
    // them keeps its range; the space is left as zeros).
    for seg in b.segments.iter_mut() {
        if seg.is_load() && Some(seg.id()) != our_load {
            seg.sections.retain(|id| !to_move.contains(id));
        }
    }

    // Lay out our segment: what it held (in address order), what moves in,
    // then the note last (it is the part that changes size).
    if let Some(seg_id) = our_load {
        let last = b.segments.iter().filter(|s| s.is_load()).map(|s| s.p_vaddr).max();
        if last != Some(b.segments.get(seg_id).p_vaddr) {
            bail!("the {SECTION_NAME} segment is not the last PT_LOAD; patch the original file instead");
        }
    }
    let mut order: Vec<SectionId> = our_load.map_or_else(Vec::new, |seg| b.segments.get(seg).sections.clone());
    order.retain(|&id| id != note_id);
    order.sort_by_key(|&id| b.sections.get(id).sh_addr);
    for &id in &to_move {
        if !order.contains(&id) {
            order.push(id);
        }
    }
    order.push(note_id);
    // Our segment is all file data (its file and memory sizes are equal).
    if let Some(&id) = order.iter().find(|&&id| b.sections.get(id).sh_type == elf::SHT_NOBITS) {
        bail!("section {} (SHT_NOBITS) would be in the {SECTION_NAME} segment", section_name(&b, id));
    }
    // Alignment 0 means none, as 1 does (the builder rounds with
    // `align - 1`). Every section's alignment must divide the segment's,
    // and the segment's offset and address agree modulo it, so each
    // section's offset and address are padded alike.
    //
    //
    // Every section here but the notes is placed at least 8-aligned: the
    // builder writes some tables with an alignment of its own (`.hash` and
    // `.gnu.version_r` come out 4-aligned when they went in 8-aligned), so
    // laying out by the input's alignment would place them differently
    // when the patched file is patched again; with a floor of 8 both
    // layouts agree and patching twice gives the same bytes. Notes keep
    // theirs (the builder does too): a `PT_NOTE` covering several must
    // have no padding between them.
    let mut align = 1;
    for &id in &order {
        let s = b.sections.get_mut(id);
        let floor = if matches!(s.data, SectionData::Note(_)) { 1 } else { 8 };
        s.sh_addralign = s.sh_addralign.max(floor);
        align = align.max(s.sh_addralign);
    }
    let seg_id = match our_load {
        Some(seg_id) => {
            let seg = b.segments.get(seg_id);
            let seg_align = seg.p_align.max(1);
            if align > seg_align || seg.p_paddr != seg.p_vaddr || seg.p_offset.wrapping_sub(seg.p_vaddr) & (seg_align - 1) != 0 {
                bail!("the {SECTION_NAME} segment is misaligned; patch the original file instead");
            }
            seg_id
        }
        // (For real files, whose sections are aligned to at most a page,
        // this is the alignment of their PT_LOAD segments.)
        None => b.segments.add_load_segment(elf::PF_R, b.load_align.max(align)).id(),
    };
    let old_addr: Vec<(SectionId, u64)> = order.iter().map(|&id| (id, b.sections.get(id).sh_addr)).collect();
    {
        let seg = b.segments.get_mut(seg_id);
        seg.remove_sections();
        for &id in &order {
            seg.append_section(b.sections.get_mut(id));
        }
        if seg.p_filesz != seg.p_memsz {
            bail!("cannot lay out the {SECTION_NAME} segment");
        }
    }

    // Symbols defined in moved sections (section symbols, `__abi_tag`)
    // move with them.
    for (id, before) in old_addr {
        let after = b.sections.get(id).sh_addr;
        if after == before || before == 0 {
            continue;
        }
        for sym in b.symbols.iter_mut() {
            if sym.section == Some(id) {
                sym.st_value = sym.st_value.wrapping_sub(before).wrapping_add(after);
            }
        }
        for sym in b.dynamic_symbols.iter_mut() {
            if sym.section == Some(id) {
                sym.st_value = sym.st_value.wrapping_sub(before).wrapping_add(after);
            }
        }
    }

    // Non-PT_LOAD segments describing moved or resized sections.
    if our_load.is_none() {
        let seg = b.segments.add();
        seg.p_type = elf::PT_NOTE;
        seg.p_flags = elf::PF_R;
        seg.p_align = 4;
        seg.append_section(b.sections.get_mut(note_id));
    }
    let sections = &b.sections;
    for seg in b.segments.iter_mut() {
        if seg.is_load() || seg.p_type == elf::PT_PHDR || seg.sections.is_empty() {
            continue;
        }
        if seg.sections.iter().any(|id| order.contains(id)) {
            seg.recalculate_ranges(sections);
        }
    }
    let size = b.program_headers_size() as u64;
    for seg in b.segments.iter_mut() {
        if seg.p_type == elf::PT_PHDR {
            seg.p_filesz = size;
            seg.p_memsz = size;
        }
    }

    let mut out = Capped { buf: Vec::new(), limit: output_limit(data.len()), over: false };
    let written = b.write(&mut out);
    if out.over {
        bail!("the patched file would be larger than {} bytes", out.limit);
    }
    written.map_err(|e| anyhow!("cannot write the patched file: {e}"))?;
    // The builder wrote `.dynstr` in an order of its own (see `dynstr`).
    crate::dynstr::keep_input_order(data, &mut out.buf);
    Ok((out.buf, report))
}
