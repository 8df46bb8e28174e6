//! keyhole-sigv4 (being written).
