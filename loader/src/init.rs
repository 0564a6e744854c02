//! Initialisers and finalisers, in glibc's order.
//!
//! glibc sorts objects so that each comes before its dependencies (a
//! depth-first walk over `DT_NEEDED`, in reverse post-order), keeping the
//! program first; initialisers then run from the end of that list
//! (dependencies first) and finalisers from its start (dependents first).
//! The program's own `DT_INIT`/`DT_INIT_ARRAY` are run by libc's start-up
//! code, not by the loader; its `DT_PREINIT_ARRAY` is run here.
#![allow(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;

use object::elf::{PF_X, PT_LOAD};

use crate::diag::Error;
use crate::link::{Dso, DsoId, Kind, Namespace};

/// Sorts `maps` (whose first element is the program) so that every object
/// precedes its dependencies. `deps(i)` lists object `i`'s dependencies.
pub fn sort<'a>(maps: &[DsoId], n_objs: usize, deps: &dyn Fn(DsoId) -> &'a [DsoId], main: DsoId) -> Vec<DsoId> {
    let mut visited = vec![false; n_objs];
    let mut rpo: Vec<DsoId> = Vec::with_capacity(maps.len());
    // Iterative DFS: (node, next dependency index).
    let mut stack: Vec<(DsoId, usize, &[DsoId])> = Vec::with_capacity(8);
    for &start in maps.iter().rev() {
        if visited.get(start).copied().unwrap_or(true) {
            continue;
        }
        visited[start] = true;
        stack.push((start, 0, deps(start)));
        while let Some((node, i, ds)) = stack.last_mut() {
            if let Some(&dep) = ds.get(*i) {
                *i += 1;
                if dep < n_objs && !visited[dep] && dep != main && maps.contains(&dep) {
                    visited[dep] = true;
                    let dd = deps(dep);
                    stack.push((dep, 0, dd));
                }
            } else {
                rpo.push(*node);
                stack.pop();
            }
        }
    }
    rpo.reverse();
    if let Some(pos) = rpo.iter().position(|&x| x == main) {
        if pos != 0 {
            let m = rpo.remove(pos);
            rpo.insert(0, m);
        }
    }
    rpo
}

/// The start-up order of the global scope (program first).
pub fn initfini_order(ns: &Namespace) -> Vec<DsoId> {
    sort(&ns.scope, ns.objs.len(), &|i| &ns.objs[i].deps, ns.main)
}

/// One initialiser or finaliser call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call(pub usize);

/// The entries of an init/fini array. The array's size was checked against
/// the object's readable memory when it was loaded ([`DynInfo::check_ranges`])
/// and every entry by [`check_entry_points`] once it was relocated; an entry
/// that no longer lies in the object's code (the program rewrote a writable
/// array since) is left out rather than called.
///
/// [`DynInfo::check_ranges`]: crate::elf::DynInfo::check_ranges
fn push_array(ns: &Namespace, id: DsoId, addr: usize, size: usize, out: &mut Vec<Call>) {
    let d = &ns.objs[id];
    if addr == 0 || !d.img.is_readable(addr, size) {
        return;
    }
    out.extend((0..size / 8).filter_map(|i| d.img.u64(addr + i * 8)).filter(|&f| in_code(d, f as usize)).map(|f| Call(f as usize)));
}

/// Whether `addr` lies in one of `d`'s executable `PT_LOAD` segments.
pub fn in_code(d: &Dso, addr: usize) -> bool {
    let (start, size) = d.code;
    if addr >= start && addr - start < size {
        return true;
    }
    d.phdrs.iter().filter(|p| p.p_type == PT_LOAD && p.p_flags & PF_X != 0).any(|p| {
        let start = d.base.wrapping_add(p.p_vaddr as usize);
        addr >= start && addr - start < p.p_memsz as usize
    })
}

/// `addr`, which object `d` gives the loader to call as `what`, must lie
/// in one of `d`'s executable segments: anything else (data, another
/// object, an unmapped address, 0) would be a crash or worse, so the object
/// is refused. glibc calls whatever it is given.
pub fn check_code(d: &Dso, addr: usize, what: &str) -> Result<(), Error> {
    if in_code(d, addr) || matches!(d.kind, Kind::Loader | Kind::Vdso) {
        return Ok(());
    }
    Err(crate::err!(d.display_name(), "{} ({}) is not in an executable segment of the object", what, shown(d, addr)))
}

/// An address for a message: inside the object as an offset (the same from
/// run to run), anything else as it is (0, -1, another object).
fn shown(d: &Dso, addr: usize) -> alloc::string::String {
    if (d.map_start..d.map_end).contains(&addr) {
        alloc::format!("offset {:#x}", addr - d.base)
    } else {
        alloc::format!("{addr:#x}")
    }
}

/// Checks every pointer object `id` gives the loader to call at start-up
/// and exit: `DT_INIT`, `DT_FINI`, each entry of `DT_INIT_ARRAY` and
/// `DT_FINI_ARRAY` and, for the program, of `DT_PREINIT_ARRAY`. Called
/// once the object is relocated (array entries are relocated values).
/// Like glibc, 0 and -1 entries are not skipped (glibc calls them and
/// crashes): they are refused like any other address outside the code.
pub fn check_entry_points(ns: &Namespace, id: DsoId) -> Result<(), Error> {
    let d = &ns.objs[id];
    if matches!(d.kind, Kind::Loader | Kind::Vdso) {
        return Ok(());
    }
    let di = &d.dyn_info;
    if di.init != 0 {
        check_code(d, di.init, "DT_INIT")?;
    }
    if di.fini != 0 {
        check_code(d, di.fini, "DT_FINI")?;
    }
    let preinit = if d.kind == Kind::Main { (di.preinit_array, di.preinit_arraysz) } else { (0, 0) };
    for (what, addr, size) in [
        ("DT_PREINIT_ARRAY entry", preinit.0, preinit.1),
        ("DT_INIT_ARRAY entry", di.init_array, di.init_arraysz),
        ("DT_FINI_ARRAY entry", di.fini_array, di.fini_arraysz),
    ] {
        if addr == 0 || size == 0 {
            continue;
        }
        // Checked at load (`check_ranges`); again here, so no loop below
        // can outrun the object.
        if !d.img.is_readable(addr, size) {
            return Err(crate::err!(d.display_name(), "{} array lies outside the object", what));
        }
        for i in 0..size / 8 {
            let f = d.img.u64(addr + i * 8).unwrap_or(0) as usize;
            if !in_code(d, f) {
                return Err(crate::err!(
                    d.display_name(),
                    "{} {} ({}) is not in an executable segment of the object",
                    what,
                    i,
                    shown(d, f)
                ));
            }
        }
    }
    Ok(())
}

/// The initialisers to run at start-up, in order: the program's preinit
/// array, then each object's `DT_INIT` and `DT_INIT_ARRAY`, dependencies
/// first. Marks the objects as initialised.
pub fn init_calls(ns: &mut Namespace, order: &[DsoId]) -> Vec<Call> {
    let mut calls = Vec::new();
    let main = ns.main;
    let di = &ns.objs[main].dyn_info;
    push_array(ns, main, di.preinit_array, di.preinit_arraysz, &mut calls);
    for &id in order.iter().rev() {
        if ns.objs[id].init_called {
            continue;
        }
        ns.objs[id].init_called = true;
        let d = &ns.objs[id];
        if matches!(d.kind, Kind::Main | Kind::Loader | Kind::Vdso) {
            continue;
        }
        push_init_calls(ns, id, &mut calls);
    }
    calls
}

/// Appends one object's initialisers to `out`: `DT_INIT`, then
/// `DT_INIT_ARRAY` in order.
pub fn push_init_calls(ns: &Namespace, id: DsoId, out: &mut Vec<Call>) {
    let d = &ns.objs[id];
    if d.dyn_info.init != 0 && in_code(d, d.dyn_info.init) {
        out.push(Call(d.dyn_info.init));
    }
    push_array(ns, id, d.dyn_info.init_array, d.dyn_info.init_arraysz, out);
}

/// Appends one object's finalisers to `out`: `DT_FINI_ARRAY` backwards,
/// then `DT_FINI`.
pub fn push_fini_calls(ns: &Namespace, id: DsoId, out: &mut Vec<Call>) {
    let d = &ns.objs[id];
    let first = out.len();
    push_array(ns, id, d.dyn_info.fini_array, d.dyn_info.fini_arraysz, out);
    out[first..].reverse();
    if d.dyn_info.fini != 0 && in_code(d, d.dyn_info.fini) {
        out.push(Call(d.dyn_info.fini));
    }
}

/// The finalisers to run at exit, in order: dependents first, each
/// object's `DT_FINI_ARRAY` backwards then `DT_FINI`.
pub fn fini_calls(ns: &mut Namespace) -> Vec<Call> {
    let all: Vec<DsoId> = {
        // Load order, as glibc's `_dl_fini` walks its chain.
        let mut v = vec![ns.main];
        v.extend((0..ns.objs.len()).filter(|&i| i != ns.main && ns.objs[i].kind != crate::link::Kind::Library));
        v.extend(ns.load_order().iter().copied().filter(|&i| i != ns.main));
        v
    };
    let order = sort(&all, ns.objs.len(), &|i| &ns.objs[i].deps, ns.main);
    let mut calls = Vec::new();
    for id in order {
        if !ns.objs[id].init_called {
            continue;
        }
        ns.objs[id].init_called = false;
        let d = &ns.objs[id];
        if matches!(d.kind, Kind::Loader | Kind::Vdso) {
            continue;
        }
        push_fini_calls(ns, id, &mut calls);
    }
    calls
}

/// Runs calls with (argc, argv, envp).
///
/// # Safety
/// Every call is an initialiser or finaliser of a relocated object.
pub unsafe fn run(calls: &[Call], argc: usize, argv: usize, envp: usize) {
    for c in calls {
        // SAFETY: forwarded to the caller.
        unsafe { crate::arch::native::call_init(c.0, argc, argv, envp) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_after_their_users() {
        // 0 = program needs 1 and 2; 1 needs 3; 2 needs 3; 3 needs nothing.
        let deps = |i: DsoId| -> &'static [DsoId] {
            match i {
                0 => &[1, 2],
                1 => &[3],
                2 => &[3],
                _ => &[],
            }
        };
        let order = sort(&[0, 1, 2, 3], 4, &deps, 0);
        assert_eq!(order[0], 0);
        let pos = |x| order.iter().position(|&y| y == x).unwrap();
        assert!(pos(1) < pos(3) && pos(2) < pos(3));
        // glibc's DFS order for this diamond: program, 1, 2, 3 → init runs 3, 2, 1.
        assert_eq!(order, vec![0, 1, 2, 3]);
    }

    #[test]
    fn cycles_terminate() {
        let deps = |i: DsoId| -> &'static [DsoId] {
            match i {
                0 => &[1],
                1 => &[2],
                2 => &[1],
                _ => &[],
            }
        };
        let order = sort(&[0, 1, 2], 3, &deps, 0);
        assert_eq!(order.len(), 3);
        assert_eq!(order[0], 0);
    }
}
