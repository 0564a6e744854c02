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

use crate::link::{DsoId, Kind, Namespace};

/// Sorts `maps` (whose first element is the program) so that every object
/// precedes its dependencies. `deps(i)` lists object `i`'s dependencies.
pub fn sort(maps: &[DsoId], n_objs: usize, deps: &dyn Fn(DsoId) -> Vec<DsoId>, main: DsoId) -> Vec<DsoId> {
    let mut visited = vec![false; n_objs];
    let mut rpo: Vec<DsoId> = Vec::with_capacity(maps.len());
    // Iterative DFS: (node, next dependency index).
    for &start in maps.iter().rev() {
        if visited.get(start).copied().unwrap_or(true) {
            continue;
        }
        visited[start] = true;
        let mut stack: Vec<(DsoId, usize, Vec<DsoId>)> = vec![(start, 0, deps(start))];
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
    sort(&ns.scope, ns.objs.len(), &|i| ns.objs[i].deps.clone(), ns.main)
}

/// One initialiser or finaliser call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call(pub usize);

fn array(ns: &Namespace, id: DsoId, addr: usize, size: usize) -> Vec<Call> {
    let d = &ns.objs[id];
    (0..size / 8).filter_map(|i| d.img.u64(addr + i * 8)).filter(|&f| f != 0 && f != u64::MAX).map(|f| Call(f as usize)).collect()
}

/// The initialisers to run at start-up, in order: the program's preinit
/// array, then each object's `DT_INIT` and `DT_INIT_ARRAY`, dependencies
/// first. Marks the objects as initialised.
pub fn init_calls(ns: &mut Namespace, order: &[DsoId]) -> Vec<Call> {
    let mut calls = Vec::new();
    let main = ns.main;
    let di = &ns.objs[main].dyn_info;
    calls.extend(array(ns, main, di.preinit_array, di.preinit_arraysz));
    for &id in order.iter().rev() {
        if ns.objs[id].init_called {
            continue;
        }
        ns.objs[id].init_called = true;
        let d = &ns.objs[id];
        if matches!(d.kind, Kind::Main | Kind::Loader | Kind::Vdso) {
            continue;
        }
        calls.extend(object_init_calls(ns, id));
    }
    calls
}

/// One object's initialisers: `DT_INIT`, then `DT_INIT_ARRAY` in order.
pub fn object_init_calls(ns: &Namespace, id: DsoId) -> Vec<Call> {
    let d = &ns.objs[id];
    let mut calls = Vec::new();
    if d.dyn_info.init != 0 {
        calls.push(Call(d.dyn_info.init));
    }
    calls.extend(array(ns, id, d.dyn_info.init_array, d.dyn_info.init_arraysz));
    calls
}

/// One object's finalisers: `DT_FINI_ARRAY` backwards, then `DT_FINI`.
pub fn object_fini_calls(ns: &Namespace, id: DsoId) -> Vec<Call> {
    let d = &ns.objs[id];
    let mut calls = array(ns, id, d.dyn_info.fini_array, d.dyn_info.fini_arraysz);
    calls.reverse();
    if d.dyn_info.fini != 0 {
        calls.push(Call(d.dyn_info.fini));
    }
    calls
}

/// The finalisers to run at exit, in order: dependents first, each
/// object's `DT_FINI_ARRAY` backwards then `DT_FINI`.
pub fn fini_calls(ns: &mut Namespace) -> Vec<Call> {
    let all: Vec<DsoId> = {
        let mut v = vec![ns.main];
        v.extend((0..ns.objs.len()).filter(|&i| i != ns.main));
        v
    };
    let order = sort(&all, ns.objs.len(), &|i| ns.objs[i].deps.clone(), ns.main);
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
        calls.extend(object_fini_calls(ns, id));
    }
    calls
}

/// Runs the deferred relocations: each IFUNC resolver, with the hwcaps
/// aarch64 resolvers expect, and its result stored.
pub fn run_deferred(ns: &Namespace, deferred: &[crate::reloc::Deferred], hwcap: (u64, u64)) -> Result<(), crate::diag::Error> {
    for d in deferred {
        // SAFETY: the resolver is an IFUNC of an object relocated before
        // any deferred relocation runs.
        let v = unsafe { crate::arch::native::call_ifunc(d.resolver, hwcap.0, hwcap.1) };
        let obj = &ns.objs[d.obj];
        if !obj.img.write_u64(d.place, (v as u64).wrapping_add(d.addend)) {
            return Err(crate::err!(obj.display_name(), "IFUNC relocation outside the writable segments"));
        }
    }
    Ok(())
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
        let deps = |i: DsoId| -> Vec<DsoId> {
            match i {
                0 => vec![1, 2],
                1 => vec![3],
                2 => vec![3],
                _ => vec![],
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
        let deps = |i: DsoId| -> Vec<DsoId> {
            match i {
                0 => vec![1],
                1 => vec![2],
                2 => vec![1],
                _ => vec![],
            }
        };
        let order = sort(&[0, 1, 2], 3, &deps, 0);
        assert_eq!(order.len(), 3);
        assert_eq!(order[0], 0);
    }
}
