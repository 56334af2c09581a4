//! Pure parsing of `/proc/self/mountinfo` and `/proc/self/status`; no I/O.

/// One line of mountinfo, with the octal escapes (`\040` etc.) undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub target: String,
    pub fstype: String,
    pub source: String,
    pub mount_opts: String,
    pub super_opts: String,
}

/// Parses one mountinfo line:
/// `id parent maj:min root target mount_opts [optional...] - fstype source super_opts`.
/// Returns `None` for a line that does not have that shape.
pub fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split(' ');
    let _id = left.next()?;
    let _parent = left.next()?;
    let _devno = left.next()?;
    let _root = left.next()?;
    let target = left.next()?;
    let mount_opts = left.next()?;
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let source = right.next()?;
    let super_opts = right.next().unwrap_or("");
    Some(MountEntry {
        target: unescape(target),
        fstype: unescape(fstype),
        source: unescape(source),
        mount_opts: mount_opts.to_owned(),
        super_opts: unescape(super_opts),
    })
}

/// Parses a whole mountinfo file, skipping malformed lines.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

/// Undoes the kernel's `\ooo` octal escaping (space, tab, newline and
/// backslash are written as `\040`, `\011`, `\012`, `\134`). A backslash not
/// followed by three octal digits is kept as is. Invalid UTF-8 in the result
/// is replaced, lossily.
pub fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            if let Some(v) = octal3(bytes.get(i + 1..i + 4)) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn octal3(digits: Option<&[u8]>) -> Option<u8> {
    let digits = digits?;
    let mut value: u32 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        value = value * 8 + u32::from(d - b'0');
    }
    u8::try_from(value).ok()
}

/// The value of a `Key:\tvalue` line in `/proc/self/status`, trimmed.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_line() {
        let line = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw,errors=remount-ro";
        assert_eq!(
            parse_mountinfo_line(line),
            Some(MountEntry {
                target: "/".into(),
                fstype: "ext4".into(),
                source: "/dev/vda".into(),
                mount_opts: "rw,relatime".into(),
                super_opts: "rw,errors=remount-ro".into(),
            })
        );
    }

    #[test]
    fn parses_without_optional_fields() {
        let line = "40 22 0:35 / /tmp ro,nosuid,nodev - tmpfs tmpfs ro,size=1024k";
        let e = parse_mountinfo_line(line);
        assert_eq!(e.as_ref().map(|e| e.target.as_str()), Some("/tmp"));
        assert_eq!(
            e.as_ref().map(|e| e.mount_opts.as_str()),
            Some("ro,nosuid,nodev")
        );
        assert_eq!(
            e.as_ref().map(|e| e.super_opts.as_str()),
            Some("ro,size=1024k")
        );
    }

    #[test]
    fn parses_multiple_optional_fields() {
        let line = "50 40 0:5 /x /mnt/a rw shared:3 master:2 propagate_from:1 - proc proc rw";
        let e = parse_mountinfo_line(line);
        assert_eq!(e.as_ref().map(|e| e.fstype.as_str()), Some("proc"));
        assert_eq!(e.as_ref().map(|e| e.source.as_str()), Some("proc"));
    }

    #[test]
    fn unescapes_octal_sequences() {
        let line = r"60 22 0:40 / /mnt/my\040dir\011x rw - fuse.sshfs user@host:/a\134b rw";
        let e = parse_mountinfo_line(line);
        assert_eq!(
            e.as_ref().map(|e| e.target.as_str()),
            Some("/mnt/my dir\tx")
        );
        assert_eq!(
            e.as_ref().map(|e| e.source.as_str()),
            Some(r"user@host:/a\b")
        );
    }

    #[test]
    fn target_containing_dash_separator_lookalike() {
        // An escaped space keeps " - " from appearing inside the target.
        let line = r"61 22 0:41 / /a\040-\040b rw - tmpfs none rw";
        let e = parse_mountinfo_line(line);
        assert_eq!(e.as_ref().map(|e| e.target.as_str()), Some("/a - b"));
        assert_eq!(e.as_ref().map(|e| e.source.as_str()), Some("none"));
    }

    #[test]
    fn unescape_leaves_incomplete_sequences() {
        assert_eq!(unescape(r"a\04"), r"a\04");
        assert_eq!(unescape(r"a\09x"), r"a\09x");
        assert_eq!(unescape(r"\"), r"\");
        assert_eq!(unescape(r"\012"), "\n");
    }

    #[test]
    fn skips_malformed_lines() {
        let text = "garbage\n22 1 0:21 / / rw - ext4 /dev/vda rw\n1 2 3\n";
        let all = parse_mountinfo(text);
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn missing_super_opts_is_empty() {
        let e = parse_mountinfo_line("1 0 0:1 / / rw - rootfs rootfs");
        assert_eq!(e.map(|e| e.super_opts), Some(String::new()));
    }

    #[test]
    fn reads_status_fields() {
        let status = "Name:\tprobe\nCapEff:\t000001ffffffffff\nNoNewPrivs:\t1\nSeccomp:\t2\n";
        assert_eq!(status_field(status, "CapEff"), Some("000001ffffffffff"));
        assert_eq!(status_field(status, "NoNewPrivs"), Some("1"));
        assert_eq!(status_field(status, "Seccomp_filters"), None);
        assert_eq!(status_field(status, "Cap"), None);
    }
}
