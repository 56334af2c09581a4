//! `/etc/subuid` and `/etc/subgid` (subuid(5)): which id ranges belong to
//! which user. Pure text in, ranges out: the front end reads the files to
//! build a plan's maps, the helper reads them again to check the plan.

/// Each `name:start:count` or `uid:start:count` line for the user, in file
/// order. Malformed lines and zero counts are skipped, as shadow's tools do.
pub fn ranges(text: &str, name: &str, uid: u32) -> Vec<(u32, u32)> {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let (who, start, count) = (fields.next()?, fields.next()?, fields.next()?);
            if fields.next().is_some() || (who != name && who != uid) {
                return None;
            }
            let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
            (count > 0 && start.checked_add(count - 1).is_some()).then_some((start, count))
        })
        .collect()
}

/// The login name of `uid` in `/etc/passwd` text.
pub fn user_name(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then_some(name)
    })
}

/// Whether `[start, start+count)` lies within one of `ranges`.
pub fn covered(ranges: &[(u32, u32)], start: u32, count: u32) -> bool {
    ranges.iter().any(|&(s, c)| {
        start >= s && u64::from(start) + u64::from(count) <= u64::from(s) + u64::from(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBUID: &str = "tester:100000:65536\n1001:165536:65536\nbad line\ntester:300000:0\ntester:4294967295:2\n tester:400000:10 \n";

    #[test]
    fn ranges_by_name_or_uid() {
        assert_eq!(
            ranges(SUBUID, "tester", 1000),
            vec![(100000, 65536), (400000, 10)]
        );
        assert_eq!(ranges(SUBUID, "other", 1001), vec![(165536, 65536)]);
        assert_eq!(ranges(SUBUID, "nobody", 65534), vec![]);
    }

    #[test]
    fn names_from_passwd() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\ntester:x:1000:1000::/home/tester:/bin/bash\n";
        assert_eq!(user_name(passwd, 1000), Some("tester"));
        assert_eq!(user_name(passwd, 0), Some("root"));
        assert_eq!(user_name(passwd, 5), None);
    }

    #[test]
    fn coverage() {
        let r = [(100000, 65536)];
        assert!(covered(&r, 100000, 65536));
        assert!(covered(&r, 100001, 10));
        assert!(!covered(&r, 99999, 2));
        assert!(!covered(&r, 100000, 65537));
        assert!(!covered(&r, u32::MAX, 1));
    }
}
