//! keyhole-policy (being written).
