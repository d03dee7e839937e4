//! Microsoft Graph: wire types, the client, the read trait and the write type.

pub mod wire;
