//! `123pan_link`: a tree of user-supplied 123pan direct links (pan123-protocol.md §4).
//! API SKETCH: being written.

use async_trait::async_trait;

use super::{BuildContext, Driver, Entry, Link};
use crate::config::{ConfigError, Options};
use crate::error::Result;

pub const OPTIONS: &[&str] = &["origin_urls", "private_key", "uid", "valid_duration", "proxy"];

pub struct Pan123Link {}

impl Pan123Link {
    pub fn from_options(_options: &Options, _ctx: &BuildContext) -> Result<Self, ConfigError> {
        todo!()
    }
}

#[async_trait]
impl Driver for Pan123Link {
    fn kind(&self) -> &'static str {
        "123pan_link"
    }
    fn root(&self) -> Entry {
        todo!()
    }
    async fn list(&self, _dir: &Entry) -> Result<Vec<Entry>> {
        todo!()
    }
    async fn link(&self, _file: &Entry) -> Result<Link> {
        todo!()
    }
}
