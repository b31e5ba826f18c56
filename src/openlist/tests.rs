//! Unit tests of the OpenList import.
