//! [`RoomGate`]: lets a join reach a room that is certain not to close
//! under it.
//!
//! The room registry takes a [`GateHold`] when it hands a room out for a
//! join; the room closes only when nobody holds its gate, and a closed gate
//! gives no more holds (the registry then starts a fresh room). The join
//! carries its hold into the room, which releases it once the join is
//! counted as pending.

use std::sync::Arc;

use parking_lot::Mutex;

#[derive(Debug, Default)]
struct GateState {
    holds: usize,
    closed: bool,
}

/// Shared between a room and the registry; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RoomGate(Arc<Mutex<GateState>>);

/// A join's claim that the room stays open; dropping it releases it.
#[derive(Debug)]
pub struct GateHold(RoomGate);

impl RoomGate {
    /// A hold on the room, unless it is closing or closed.
    pub fn hold(&self) -> Option<GateHold> {
        let mut s = self.0.lock();
        if s.closed {
            return None;
        }
        s.holds += 1;
        Some(GateHold(self.clone()))
    }

    /// Closes the gate if nobody holds it; returns whether it is closed.
    pub fn try_close(&self) -> bool {
        let mut s = self.0.lock();
        if s.holds == 0 {
            s.closed = true;
        }
        s.closed
    }

    /// Closes the gate whatever holds remain (the room is being shut).
    pub fn force_close(&self) {
        self.0.lock().closed = true;
    }

    /// Whether the gate is closed.
    pub fn is_closed(&self) -> bool {
        self.0.lock().closed
    }
}

impl Drop for GateHold {
    fn drop(&mut self) {
        let mut s = (self.0).0.lock();
        s.holds = s.holds.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_gate_does_not_close() {
        let gate = RoomGate::default();
        let hold = gate.hold().unwrap();
        assert!(!gate.try_close());
        drop(hold);
        assert!(gate.try_close());
        assert!(gate.hold().is_none());
    }

    #[test]
    fn force_close_ignores_holds() {
        let gate = RoomGate::default();
        let _hold = gate.hold().unwrap();
        gate.force_close();
        assert!(gate.is_closed() && gate.hold().is_none());
    }
}
