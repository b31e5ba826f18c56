//! The provider simulator. Being written.
