//! Plex scans a library section, or a folder of one (a partial scan): the changed paths are
//! matched to the sections whose folders hold them. The sections are asked for once and kept;
//! asked again when a path matches none (a library added since), at most once per batch.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::deliver::{Failure, check};
use super::wire::{PlexSection, PlexSections};

/// Everything but unreserved characters is escaped in the `path` query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub struct Plex {
    pub url: url::Url,
    pub token: String,
    sections: Option<Vec<PlexSection>>,
}

impl Plex {
    pub fn new(url: url::Url, token: String) -> Self {
        Plex { url, token, sections: None }
    }

    /// Scan each of `paths` that lies in a section.
    pub async fn scan(&mut self, client: &reqwest::Client, paths: &[String]) -> Result<(), Failure> {
        let unmatched = |sections: &Option<Vec<PlexSection>>| {
            sections.as_ref().is_none_or(|s| paths.iter().any(|p| section_of(s, p).is_none()))
        };
        if unmatched(&self.sections) {
            self.sections = Some(self.fetch_sections(client).await?);
        }
        let sections = self.sections.as_deref().unwrap_or_default();
        for path in paths {
            let Some(section) = section_of(sections, path) else {
                tracing::debug!(path = %path, "plex: in no library section; not scanned");
                continue;
            };
            tracing::debug!(section = %section.title, path = %path, "plex: partial scan");
            let url = format!(
                "{}/library/sections/{}/refresh?path={}",
                base(&self.url),
                utf8_percent_encode(&section.key, QUERY_VALUE),
                utf8_percent_encode(path, QUERY_VALUE)
            );
            check(client.get(url).header("X-Plex-Token", &self.token).send().await)?;
        }
        Ok(())
    }

    async fn fetch_sections(&self, client: &reqwest::Client) -> Result<Vec<PlexSection>, Failure> {
        let url = format!("{}/library/sections", base(&self.url));
        let request = client.get(url).header("X-Plex-Token", &self.token).header("Accept", "application/json");
        let body = check(request.send().await)?.bytes().await.map_err(Failure::from)?;
        let sections: PlexSections = serde_json::from_slice(&body)
            .map_err(|e| Failure(format!("the answer of /library/sections is not the expected JSON: {e}")))?;
        Ok(sections.container.sections)
    }
}

/// The URL without a trailing `/`, to append an API path to.
pub fn base(url: &url::Url) -> &str {
    url.as_str().trim_end_matches('/')
}

/// The section with the longest folder holding `path`.
fn section_of<'s>(sections: &'s [PlexSection], path: &str) -> Option<&'s PlexSection> {
    let holds = |location: &str| {
        let location = location.trim_end_matches('/');
        path == location || path.strip_prefix(location).is_some_and(|rest| rest.starts_with('/'))
    };
    sections
        .iter()
        .flat_map(|s| s.locations.iter().map(move |l| (s, l.path.as_str())))
        .filter(|(_, l)| holds(l))
        .max_by_key(|(_, l)| l.len())
        .map(|(s, _)| s)
}
