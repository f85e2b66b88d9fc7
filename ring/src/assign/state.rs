//! The assignment being worked on: a slot per (partition, replica) and the
//! counters the phases steer by.

use super::topology::Topology;

/// Owner slots plus per-member and per-zone counters kept in step with them.
pub(crate) struct State<'t> {
    topology: &'t Topology<'t>,
    /// `Q * N` slots, partition-major; slot 0 of a partition is its primary.
    slots: Vec<Option<u16>>,
    /// The slots as the previous ring left them (all `None` for a new
    /// ring).
    original: Vec<Option<u16>>,
    /// Fresh replicas (see [`State::is_fresh`]) per zone of their owner.
    zone_fresh: Vec<usize>,
    /// Partitions each member holds, in no particular (but deterministic)
    /// order.
    held: Vec<Vec<u32>>,
    /// Replicas held per zone.
    zone_loads: Vec<usize>,
    /// Partitions each member is primary for.
    primaries: Vec<usize>,
}

impl<'t> State<'t> {
    /// An empty assignment, seeded with `previous` owners if given. Entries
    /// that are out of range or repeat an owner are dropped.
    pub(crate) fn new(topology: &'t Topology<'t>, previous: Option<&[Vec<Option<u16>>]>) -> Self {
        let members = topology.member_count();
        let mut state = State {
            topology,
            slots: vec![None; topology.partitions * topology.replication],
            original: Vec::new(),
            zone_fresh: vec![0; topology.zone_count()],
            held: vec![Vec::new(); members],
            zone_loads: vec![0; topology.zone_count()],
            primaries: vec![0; members],
        };
        for (partition, list) in previous.unwrap_or_default().iter().enumerate() {
            if partition >= topology.partitions {
                break;
            }
            for (slot, owner) in list.iter().enumerate().take(topology.replication) {
                let member = owner.map(usize::from);
                if let Some(member) = member.filter(|&m| m < members && !state.holds(partition, m))
                {
                    state.place(partition, slot, member);
                }
            }
        }
        state.original = state.slots.clone();
        state.zone_fresh.fill(0);
        state
    }

    /// The fixed facts.
    pub(crate) fn topology(&self) -> &'t Topology<'t> {
        self.topology
    }

    /// The slots of a partition.
    pub(crate) fn slots(&self, partition: usize) -> &[Option<u16>] {
        let n = self.topology.replication;
        &self.slots[partition * n..(partition + 1) * n]
    }

    /// The members currently in a partition's slots.
    pub(crate) fn owners(&self, partition: usize) -> impl Iterator<Item = usize> + '_ {
        self.slots(partition)
            .iter()
            .flatten()
            .map(|&m| usize::from(m))
    }

    /// Whether `member` holds `partition`.
    pub(crate) fn holds(&self, partition: usize, member: usize) -> bool {
        self.owners(partition).any(|m| m == member)
    }

    /// The primary of a partition, if its first slot is filled.
    pub(crate) fn primary(&self, partition: usize) -> Option<usize> {
        self.slots(partition)[0].map(usize::from)
    }

    /// Replicas of `partition` held in `zone`.
    pub(crate) fn zone_count(&self, partition: usize, zone: usize) -> usize {
        self.owners(partition)
            .filter(|&m| self.topology.zone_of[m] == zone)
            .count()
    }

    /// Partitions `member` holds.
    pub(crate) fn held(&self, member: usize) -> &[u32] {
        &self.held[member]
    }

    /// Replicas `member` holds.
    pub(crate) fn load(&self, member: usize) -> usize {
        self.held[member].len()
    }

    /// Replicas per member.
    pub(crate) fn loads(&self) -> Vec<usize> {
        self.held.iter().map(Vec::len).collect()
    }

    /// Replicas held in `zone`.
    pub(crate) fn zone_load(&self, zone: usize) -> usize {
        self.zone_loads[zone]
    }

    /// Partitions `member` is primary for.
    pub(crate) fn primary_count(&self, member: usize) -> usize {
        self.primaries[member]
    }

    /// Whether the member in a slot is new to the partition (did not own it
    /// in the previous ring): its data moves anyway, so moving it again
    /// costs nothing.
    pub(crate) fn is_fresh(&self, partition: usize, slot: usize) -> bool {
        self.slots(partition)[slot].is_some_and(|m| !self.was_owner(partition, usize::from(m)))
    }

    /// Whether `member` owned `partition` in the previous ring.
    pub(crate) fn was_owner(&self, partition: usize, member: usize) -> bool {
        let n = self.topology.replication;
        self.original
            .get(partition * n..(partition + 1) * n)
            .is_some_and(|list| list.contains(&Some(member as u16)))
    }

    /// The members that owned `partition` in the previous ring.
    pub(crate) fn former_owners(&self, partition: usize) -> impl Iterator<Item = usize> + '_ {
        let n = self.topology.replication;
        self.original
            .get(partition * n..(partition + 1) * n)
            .unwrap_or_default()
            .iter()
            .flatten()
            .map(|&m| usize::from(m))
    }

    /// Fresh slots held by members of `zone`.
    pub(crate) fn zone_fresh(&self, zone: usize) -> usize {
        self.zone_fresh[zone]
    }

    /// Puts `member` in an empty slot.
    pub(crate) fn place(&mut self, partition: usize, slot: usize, member: usize) {
        let index = partition * self.topology.replication + slot;
        debug_assert!(self.slots[index].is_none());
        self.slots[index] = Some(member as u16);
        self.held[member].push(partition as u32);
        let zone = self.topology.zone_of[member];
        self.zone_loads[zone] += 1;
        if self.is_fresh(partition, slot) {
            self.zone_fresh[zone] += 1;
        }
        if slot == 0 {
            self.primaries[member] += 1;
        }
    }

    /// Empties a slot.
    pub(crate) fn vacate(&mut self, partition: usize, slot: usize) {
        let index = partition * self.topology.replication + slot;
        let fresh = self.is_fresh(partition, slot);
        let Some(member) = self.slots[index].take().map(usize::from) else {
            return;
        };
        if fresh {
            self.zone_fresh[self.topology.zone_of[member]] -= 1;
        }
        let held = &mut self.held[member];
        if let Some(at) = held.iter().position(|&p| p as usize == partition) {
            held.swap_remove(at);
        }
        self.zone_loads[self.topology.zone_of[member]] -= 1;
        if slot == 0 {
            self.primaries[member] -= 1;
        }
    }

    /// Swaps `member` (an owner of `partition`) into the primary slot.
    pub(crate) fn promote(&mut self, partition: usize, member: usize) {
        let Some(slot) = self.slot_of(partition, member) else {
            return;
        };
        if slot == 0 {
            return;
        }
        let old = self.slots(partition)[0].map(usize::from);
        self.vacate(partition, 0);
        self.vacate(partition, slot);
        self.place(partition, 0, member);
        if let Some(old) = old {
            self.place(partition, slot, old);
        }
    }

    /// The slot `member` occupies in `partition`.
    pub(crate) fn slot_of(&self, partition: usize, member: usize) -> Option<usize> {
        self.slots(partition)
            .iter()
            .position(|&s| s.map(usize::from) == Some(member))
    }

    /// The finished owner lists (empty slots, which the phases never leave,
    /// are skipped).
    pub(crate) fn into_owners(self) -> Vec<Vec<u16>> {
        self.slots
            .chunks(self.topology.replication)
            .map(|list| list.iter().flatten().copied().collect())
            .collect()
    }
}
