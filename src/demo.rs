//! `panmount demo`: a working mount without an account. It generates sample files, serves them
//! from the bundled simulator's CDN on loopback with 123pan `auth_key` signing switched on, and
//! mounts them through the real `123pan_link` driver, the real caches and the real read path.
//! Half the files are listed without a size, so the demo also shows sizes learned from the server.

use std::path::Path;
use std::sync::Arc;

use crate::app::{self, AppError};
use crate::config::Config;
use crate::sim::{self, CdnAuth, SimConfig, sample};

pub const DEMO_UID: u64 = 1_814_435_971;

pub fn run(rt: &tokio::runtime::Runtime, mountpoint: &Path) -> Result<(), AppError> {
    let failed = |what: &str, e: std::io::Error| AppError::Failed(format!("demo: {what}: {e}"));
    std::fs::create_dir_all(mountpoint).map_err(|e| failed("mount point", e))?;
    let data = std::env::temp_dir().join(format!("panmount-demo-{}", std::process::id()));
    std::fs::create_dir_all(&data).map_err(|e| failed("sample dir", e))?;
    let files = sample::generate(&data).map_err(|e| failed("sample files", e))?;
    let private_key: String = format!("demo-{:016x}", rand::random::<u64>());
    let sim = rt
        .block_on(sim::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.clone(),
            cdn_auth: Some(CdnAuth { private_key: private_key.clone(), uid: DEMO_UID }),
        }))
        .map_err(|e| failed("simulator", e))?;
    let tree = sample::link_tree(&data, |rel| sim.cdn_url(rel), sample::SizeMode::Mixed)
        .map_err(|e| failed("link tree", e))?;
    let text = format!(
        "[[storage]]\npath = \"/123pan-links\"\ndriver = \"123pan_link\"\nprivate_key = {}\nuid = {DEMO_UID}\norigin_urls = {}\n",
        toml::Value::String(private_key),
        toml::Value::String(tree),
    );
    let config = Config::parse(&text, Path::new("<demo>"))?;
    let fs = Arc::new(app::build_fs(&config)?);
    println!(
        "panmount demo: {} sample files served by the simulator at {}, mounted at {}/123pan-links",
        files.len(),
        sim.base_url(),
        mountpoint.display()
    );
    println!("try: ls -lR {0} ; sha256sum {0}/123pan-links/*/* ; press Ctrl-C to unmount", mountpoint.display());
    let result = app::serve(rt, fs, mountpoint, &config);
    rt.block_on(sim.shutdown());
    let _ = std::fs::remove_dir_all(&data);
    result
}
