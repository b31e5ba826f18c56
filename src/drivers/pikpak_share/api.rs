//! PikPak share wire types (pikpak-protocol.md §9), serde only. Share problems arrive as HTTP
//! 200 with `share_status` other than `OK`.

use serde::Deserialize;

use crate::drivers::pikpak::api::File;

/// §9.1 (`/drive/v1/share`) and §9.2 (`/drive/v1/share/detail`).
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct SharePage {
    pub share_status: String,
    pub share_status_text: String,
    pub pass_code_token: String,
    pub files: Vec<File>,
    pub next_page_token: String,
}

/// §9.3 (`/drive/v1/share/file_info`).
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct ShareFileInfo {
    pub share_status: String,
    pub share_status_text: String,
    pub file_info: File,
}
