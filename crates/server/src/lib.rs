//! keyhole-server (being written).
