//! What the media servers' APIs send and take, as JSON.

use serde::{Deserialize, Serialize};

/// Jellyfin and Emby: the body of `POST /Library/Media/Updated`.
#[derive(Debug, Serialize)]
pub struct MediaUpdated<'a> {
    #[serde(rename = "Updates")]
    pub updates: Vec<MediaUpdate<'a>>,
}

#[derive(Debug, Serialize)]
pub struct MediaUpdate<'a> {
    #[serde(rename = "Path")]
    pub path: &'a str,
    #[serde(rename = "UpdateType")]
    pub update_type: &'static str,
}

impl<'a> MediaUpdated<'a> {
    pub fn modified(paths: &'a [String]) -> Self {
        MediaUpdated { updates: paths.iter().map(|path| MediaUpdate { path, update_type: "Modified" }).collect() }
    }
}

/// Plex: the answer of `GET /library/sections` (with `Accept: application/json`).
#[derive(Debug, Deserialize)]
pub struct PlexSections {
    #[serde(rename = "MediaContainer")]
    pub container: PlexContainer,
}

#[derive(Debug, Deserialize)]
pub struct PlexContainer {
    /// Absent when the server has no library.
    #[serde(rename = "Directory", default)]
    pub sections: Vec<PlexSection>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlexSection {
    pub key: String,
    #[serde(default)]
    pub title: String,
    #[serde(rename = "Location", default)]
    pub locations: Vec<PlexLocation>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PlexLocation {
    pub path: String,
}
