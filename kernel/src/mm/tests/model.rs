//! Property test: random operation sequences on an address space agree with
//! a plain byte-vector model (contents, faults, growth), and a snapshot
//! taken midway keeps the bytes of its instant.

use proptest::prelude::*;

use super::super::*;

/// Model memory: the primary area at 0 plus one read-only area at
/// `RO_BASE`, as one flat vector with a separate mapped length.
const MAX_PAGES: u32 = 4;
const RO_BASE: u64 = 8 * WASM_PAGE_SIZE;
const RO_SIZE: u64 = 2 * PAGE_SIZE;

#[derive(Clone, Debug)]
enum Op {
    Store(u64, Vec<u8>),
    Load(u64, usize),
    Fill(u64, u8, u64),
    Copy(u64, u64, u64),
    Grow(u32),
    Snapshot,
    ClearDirty,
}

fn addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..(MAX_PAGES as u64 * WASM_PAGE_SIZE + 64),
        (1..16u64).prop_map(|k| k * PAGE_SIZE - 8 + (k % 9)),
        (RO_BASE - 16)..(RO_BASE + RO_SIZE + 16),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (addr(), prop::collection::vec(any::<u8>(), 1..9)).prop_map(|(a, v)| Op::Store(a, v)),
        3 => (addr(), 1usize..9).prop_map(|(a, n)| Op::Load(a, n)),
        2 => (addr(), any::<u8>(), 0..10_000u64).prop_map(|(a, b, n)| Op::Fill(a, b, n)),
        2 => (addr(), addr(), 0..10_000u64).prop_map(|(d, s, n)| Op::Copy(d, s, n)),
        1 => (0..3u32).prop_map(Op::Grow),
        1 => Just(Op::Snapshot),
        1 => Just(Op::ClearDirty),
    ]
}

struct Model {
    primary: Vec<u8>,
    ro: Vec<u8>,
    dirty: std::collections::BTreeSet<u64>,
}

impl Model {
    fn check(&self, addr: u64, len: u64, write: bool) -> Result<(), Fault> {
        let plen = self.primary.len() as u64;
        if len == 0 {
            let ok = addr <= plen || (RO_BASE..=RO_BASE + RO_SIZE).contains(&addr);
            return if ok {
                Ok(())
            } else {
                Err(Fault::Unmapped { addr })
            };
        }
        for at in addr..addr + len {
            if at < plen {
                continue;
            }
            if (RO_BASE..RO_BASE + RO_SIZE).contains(&at) {
                if write {
                    return Err(Fault::Protection { addr: at, write });
                }
                continue;
            }
            return Err(Fault::Unmapped { addr: at });
        }
        Ok(())
    }

    fn byte(&mut self, at: u64) -> &mut u8 {
        if at >= RO_BASE {
            &mut self.ro[(at - RO_BASE) as usize]
        } else {
            &mut self.primary[at as usize]
        }
    }

    fn write(&mut self, addr: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let at = addr + i as u64;
            *self.byte(at) = b;
            self.dirty.insert(at & !(PAGE_SIZE - 1));
        }
    }

    fn read(&mut self, addr: u64, len: u64) -> Vec<u8> {
        (addr..addr + len).map(|at| *self.byte(at)).collect()
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut space = AddressSpace::new(MemLimits::unlimited());
    space.create_primary(1, Some(MAX_PAGES)).expect("primary");
    space
        .create_area(RO_BASE, RO_SIZE, AreaFlags::READ)
        .expect("ro");
    let ro_init: Vec<u8> = (0..RO_SIZE).map(|i| (i * 7 % 256) as u8).collect();
    for (k, chunk) in ro_init.chunks(PAGE_SIZE as usize).enumerate() {
        let page: Page = chunk.try_into().expect("page-sized chunk");
        space
            .restore_page(RO_BASE + k as u64 * PAGE_SIZE, &page)
            .expect("restore");
    }
    let mut model = Model {
        primary: vec![0; WASM_PAGE_SIZE as usize],
        ro: ro_init,
        dirty: Default::default(),
    };
    let mut snapshots: Vec<(SpaceSnapshot, Vec<u8>)> = Vec::new();
    for op in ops {
        match op {
            Op::Store(addr, data) => {
                let expect = model.check(*addr, data.len() as u64, true);
                prop_assert_eq!(space.write(*addr, data), expect);
                if expect.is_ok() {
                    model.write(*addr, data);
                }
            }
            Op::Load(addr, n) => {
                let expect = model.check(*addr, *n as u64, false);
                let mut buf = vec![0; *n];
                let got = space.read(*addr, &mut buf);
                prop_assert_eq!(got, expect);
                if expect.is_ok() {
                    prop_assert_eq!(buf, model.read(*addr, *n as u64));
                }
                if *n == 4 {
                    let fast = space.load::<4>(*addr);
                    prop_assert_eq!(
                        fast.map(|b| b.to_vec()).map_err(|f| f.addr()),
                        expect.map(|_| model.read(*addr, 4)).map_err(|f| f.addr())
                    );
                }
            }
            Op::Fill(addr, byte, n) => {
                let expect = model.check(*addr, *n, true);
                prop_assert_eq!(space.fill(*addr, *byte, *n), expect);
                if expect.is_ok() {
                    model.write(*addr, &vec![*byte; *n as usize]);
                }
            }
            Op::Copy(dst, src, n) => {
                let expect = model
                    .check(*src, *n, false)
                    .and_then(|()| model.check(*dst, *n, true));
                prop_assert_eq!(space.copy_within(*dst, *src, *n), expect);
                if expect.is_ok() {
                    let data = model.read(*src, *n);
                    model.write(*dst, &data);
                }
            }
            Op::Grow(delta) => {
                let old = model.primary.len() as u64 / WASM_PAGE_SIZE;
                let new = old + u64::from(*delta);
                let expect = (new <= u64::from(MAX_PAGES)).then_some(old as u32);
                prop_assert_eq!(space.grow_primary(*delta), expect);
                if expect.is_some() {
                    model.primary.resize((new * WASM_PAGE_SIZE) as usize, 0);
                }
            }
            Op::Snapshot => snapshots.push((space.snapshot(), model.primary.clone())),
            Op::ClearDirty => {
                space.clear_dirty();
                model.dirty.clear();
            }
        }
    }
    let mut all = vec![0; model.primary.len()];
    space.read(0, &mut all).expect("whole primary");
    prop_assert!(all == model.primary, "final primary differs");
    let dirty: Vec<u64> = space.dirty_pages().collect();
    prop_assert_eq!(dirty, model.dirty.iter().copied().collect::<Vec<_>>());
    for (snap, bytes) in snapshots {
        let mut buf = vec![0; bytes.len()];
        prop_assert!(snap.read(0, &mut buf).is_some());
        prop_assert!(buf == bytes, "snapshot changed after later writes");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn matches_a_byte_vector_model(ops in prop::collection::vec(op(), 1..60)) {
        run(&ops)?;
    }
}
