//! keyhole-store (being written).
