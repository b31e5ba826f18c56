//! The simulated PikPak's write side over real HTTP on 127.0.0.1: mutations and their tasks,
//! the trash and quota (`mutations`), upload init and the object store (`uploads`). The client
//! here (`client`) signs object-store requests itself from the write decisions file (OSS V1,
//! HMAC-SHA1), so the simulator's check and this signer check each other.

mod client;
mod mutations;
mod uploads;
