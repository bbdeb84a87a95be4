//! Views and public files: where they come from, which file a URL path names, and its content
//! type.
//!
//! Every path that comes from a request or a view name goes through [`safe_segments`], which
//! refuses anything that could climb out of the source (`..`, hidden names, backslashes, NUL,
//! empty or absolute components). Folder sources are then checked a second time after
//! resolving symlinks: the real file must still be inside the real root.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Where views or public files come from.
///
/// ```
/// use signalhub::http::Assets;
/// let on_disk = Assets::Folder("public".into());
/// static PAGES: &[(&str, &[u8])] = &[("index.html", b"<h1>hello</h1>")];
/// let built_in = Assets::Embedded(PAGES);
/// # let _ = (on_disk, built_in);
/// ```
#[derive(Debug, Clone)]
pub enum Assets {
    /// Files under a folder on disk, read when requested (edits show up without a restart).
    /// Symlinks are followed only while they stay inside the folder.
    Folder(PathBuf),
    /// Files built into the program, e.g. with `include_bytes!`: pairs of a relative path
    /// (`"index.html"`, `"js/app.js"`) and the file's contents.
    Embedded(&'static [(&'static str, &'static [u8])]),
}

/// A file found in an [`Assets`] source, with the content type its extension gives.
#[derive(Debug)]
pub(crate) struct Asset {
    pub(crate) body: AssetBody,
    pub(crate) content_type: &'static str,
}

/// Where an asset's bytes are.
#[derive(Debug)]
pub(crate) enum AssetBody {
    /// Built into the program.
    Static(&'static [u8]),
    /// A regular file, opened, and its length: read as it is sent, never whole.
    File(File, u64),
}

impl Asset {
    /// The whole asset in memory (views, which are small pages).
    fn into_bytes(self) -> std::io::Result<Vec<u8>> {
        match self.body {
            AssetBody::Static(bytes) => Ok(bytes.to_vec()),
            AssetBody::File(mut file, length) => {
                let mut bytes = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
                file.read_to_end(&mut bytes)?;
                Ok(bytes)
            }
        }
    }
}

impl Assets {
    /// The file at `segments` (already checked by [`safe_segments`]), if there is one.
    fn find(&self, segments: &[&str]) -> Option<Asset> {
        let body = match self {
            Assets::Folder(root) => {
                open_in_folder(root, segments).map(|(f, n)| AssetBody::File(f, n))?
            }
            Assets::Embedded(files) => {
                AssetBody::Static(find_embedded(files, &segments.join("/"))?)
            }
        };
        let name = segments.last().copied().unwrap_or_default();
        Some(Asset {
            body,
            content_type: content_type(name),
        })
    }
}

/// The public file a request path names: `/` is `index.html`. `None` for anything missing,
/// not a regular file, or outside the source.
pub(crate) fn public_file(assets: &Assets, url_path: &str) -> Option<Asset> {
    let mut segments = safe_segments(url_path)?;
    if segments.is_empty() {
        segments.push("index.html");
    }
    assets.find(&segments)
}

/// The view called `name` (`"index"` or `"index.html"`, `"admin/users"`) and its content
/// type, or a short reason why there is none.
pub(crate) fn view(assets: Option<&Assets>, name: &str) -> Result<(Vec<u8>, &'static str), String> {
    let assets = assets.ok_or_else(|| format!("view {name:?}: no views are configured"))?;
    let file_name = match Path::new(name).extension() {
        Some(_) => name.to_owned(),
        None => format!("{name}.html"),
    };
    let path = format!("/{}", file_name.trim_start_matches('/'));
    let asset = safe_segments(&path)
        .filter(|segments| !segments.is_empty())
        .and_then(|segments| assets.find(&segments))
        .ok_or_else(|| format!("view {name:?} not found"))?;
    let content_type = asset.content_type;
    let bytes = asset
        .into_bytes()
        .map_err(|e| format!("view {name:?}: cannot read it: {e}"))?;
    Ok((bytes, content_type))
}

/// Splits a decoded request path (`/js/app.js`) into its components, or `None` when any of
/// them is unsafe: empty (`//x`, `/a//b`, a trailing `/`), hidden or relative (`.`, `..`,
/// `.git`), holding a backslash, NUL or `:`, or anything the platform would not read as one
/// plain file name. `/` alone is an empty list.
pub(crate) fn safe_segments(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.split('/')
        .map(|segment| is_plain_name(segment).then_some(segment))
        .collect()
}

fn is_plain_name(segment: &str) -> bool {
    let forbidden = |c: char| c == '\\' || c == '\0' || c == ':';
    if segment.is_empty() || segment.starts_with('.') || segment.contains(forbidden) {
        return false;
    }
    let mut components = Path::new(segment).components();
    matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(_)), None)
    )
}

/// Opens `root/segments...` if, with every symlink resolved, it is a regular file inside the
/// resolved `root` (compared component by component, so `/srv/pub` does not contain
/// `/srv/public2`). Returns the open file and its length.
fn open_in_folder(root: &Path, segments: &[&str]) -> Option<(File, u64)> {
    let root = root
        .canonicalize()
        .map_err(|e| log::debug!("assets folder {}: {e}", root.display()))
        .ok()?;
    let wanted = segments.iter().fold(root.clone(), |path, s| path.join(s));
    let real = wanted.canonicalize().ok()?;
    if !real.starts_with(&root) {
        log::debug!(
            "refusing {}: it leads outside {}",
            wanted.display(),
            root.display()
        );
        return None;
    }
    open_regular_file(&real)
        .map_err(|e| log::warn!("cannot read {}: {e}", real.display()))
        .ok()
        .flatten()
}

/// Opens `path` only if it is a regular file: anything else (a FIFO, a device, a folder) is
/// `None`. It is checked before opening, since opening a FIFO waits for a writer, and opened
/// nonblocking, so one swapped in between cannot block either; the open file is checked
/// again.
fn open_regular_file(path: &Path) -> std::io::Result<Option<(File, u64)>> {
    if !std::fs::metadata(path)?.is_file() {
        return Ok(None);
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let metadata = file.metadata()?;
    let length = metadata.len();
    Ok(metadata.is_file().then_some((file, length)))
}

fn find_embedded(files: &[(&str, &'static [u8])], wanted: &str) -> Option<&'static [u8]> {
    files
        .iter()
        .find(|(name, _)| name.trim_start_matches("./").trim_start_matches('/') == wanted)
        .map(|(_, bytes)| *bytes)
}

/// The `Content-Type` for a file name, by its extension (case-insensitive);
/// `application/octet-stream` when unknown.
pub(crate) fn content_type(file_name: &str) -> &'static str {
    let extension = Path::new(file_name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" | "map" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_split_into_segments() {
        assert_eq!(safe_segments("/"), Some(vec![]));
        assert_eq!(safe_segments("/app.js"), Some(vec!["app.js"]));
        assert_eq!(
            safe_segments("/js/app.min.js"),
            Some(vec!["js", "app.min.js"])
        );
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for path in [
            "",
            "x",
            "/..",
            "/../x",
            "/a/../../x",
            "/./x",
            "/.git/config",
            "//etc/passwd",
            "/a//b",
            "/dir/",
            "/..\\x",
            "/a\\b",
            "/\0",
            "/x\0.html",
            "/c:/windows",
        ] {
            assert_eq!(safe_segments(path), None, "{path:?}");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("APP.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("mod.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.woff2"), "font/woff2");
        assert_eq!(content_type("photo.JPEG"), "image/jpeg");
        assert_eq!(content_type("README"), "application/octet-stream");
        assert_eq!(content_type("x.unknown"), "application/octet-stream");
    }

    static EMBEDDED: &[(&str, &[u8])] = &[
        ("index.html", b"<p>home</p>"),
        ("./js/app.js", b"run()"),
        ("about.html", b"<p>about</p>"),
    ];

    #[test]
    fn embedded_public_files_and_views_are_found() {
        let assets = Assets::Embedded(EMBEDDED);
        let home = public_file(&assets, "/").unwrap();
        assert!(matches!(home.body, AssetBody::Static(b"<p>home</p>")));
        assert_eq!(home.content_type, "text/html; charset=utf-8");
        let app = public_file(&assets, "/js/app.js").unwrap();
        assert_eq!(app.content_type, "text/javascript; charset=utf-8");
        assert!(public_file(&assets, "/missing.js").is_none());
        assert!(public_file(&assets, "/../index.html").is_none());
        assert_eq!(view(Some(&assets), "about").unwrap().0, b"<p>about</p>");
        assert_eq!(
            view(Some(&assets), "about.html").unwrap().0,
            b"<p>about</p>"
        );
        assert!(view(Some(&assets), "nope")
            .unwrap_err()
            .contains("not found"));
        assert!(view(Some(&assets), "../index").is_err());
        assert!(view(None, "index").unwrap_err().contains("no views"));
    }
}
