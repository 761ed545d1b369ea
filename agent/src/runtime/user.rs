//! Which uid, gid and supplementary groups a container's process runs with, from the pod's
//! security context, the image's `User`, and the image's own /etc/passwd and /etc/group (as
//! containerd's CRI plugin resolves them). Pure: the caller reads the files.

/// What the pod asks for (securityContext runAsUser / runAsGroup / supplementalGroups).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserSpec {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    pub supplemental_groups: Vec<u32>,
}

/// The identity the process gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let uid = f.next()?.trim().parse().ok()?;
        let gid = f.next()?.trim().parse().ok()?;
        (!name.is_empty() && !name.starts_with('#')).then_some(PasswdEntry { name, uid, gid })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let gid = f.next()?.trim().parse().ok()?;
        let members = f
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        (!name.is_empty() && !name.starts_with('#')).then_some(GroupEntry { name, gid, members })
    })
}

/// Resolves the process identity. `image_user` is the image config's `User` ("", "uid",
/// "name", "uid:gid", "name:group"); `passwd` and `group` are the image's files, when it has
/// them. A name that the files do not know is an error; a numeric uid that they do not know
/// gets gid 0, as with containerd.
pub fn resolve(
    spec: &UserSpec,
    image_user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, String> {
    let passwd = passwd.unwrap_or("");
    let group = group.unwrap_or("");
    let by_uid = |uid: u32| passwd_entries(passwd).find(|e| e.uid == uid);

    let (user_part, group_part) = match image_user.split_once(':') {
        Some((u, g)) => (u.trim(), Some(g.trim())),
        None => (image_user.trim(), None),
    };

    let (uid, mut gid, username) = if let Some(uid) = spec.run_as_user {
        let entry = by_uid(uid);
        (
            uid,
            entry.as_ref().map_or(0, |e| e.gid),
            entry.map(|e| e.name),
        )
    } else if user_part.is_empty() {
        let entry = by_uid(0);
        (
            0,
            entry.as_ref().map_or(0, |e| e.gid),
            entry.map(|e| e.name),
        )
    } else if let Ok(uid) = user_part.parse::<u32>() {
        let entry = by_uid(uid);
        (
            uid,
            entry.as_ref().map_or(0, |e| e.gid),
            entry.map(|e| e.name),
        )
    } else {
        let entry = passwd_entries(passwd)
            .find(|e| e.name == user_part)
            .ok_or_else(|| format!("user {user_part:?} is not in the image's /etc/passwd"))?;
        (entry.uid, entry.gid, Some(entry.name))
    };

    // The image's group applies only to the image's user.
    if spec.run_as_user.is_none()
        && let Some(g) = group_part.filter(|g| !g.is_empty())
    {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                group_entries(group)
                    .find(|e| e.name == g)
                    .ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?
                    .gid
            }
        };
    }
    if let Some(g) = spec.run_as_group {
        gid = g;
    }

    let mut additional_gids: Vec<u32> = Vec::new();
    if let Some(name) = username {
        for g in group_entries(group).filter(|g| g.members.contains(&name)) {
            additional_gids.push(g.gid);
        }
    }
    additional_gids.extend(spec.supplemental_groups.iter().copied());
    let mut seen = std::collections::HashSet::from([gid]);
    additional_gids.retain(|g| seen.insert(*g));

    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        skiff:x:1000:1000::/home/skiff:/bin/sh\n\
        nobody:x:65534:65534:nobody:/:/bin/false\n";
    const GROUP: &str = "root:x:0:\nskiff:x:1000:\nextra:x:3000:skiff,other\nwheel:x:10:root\n";

    fn r(spec: &UserSpec, image_user: &str) -> Result<ResolvedUser, String> {
        resolve(spec, image_user, Some(PASSWD), Some(GROUP))
    }

    fn user(uid: u32, gid: u32, extra: &[u32]) -> ResolvedUser {
        ResolvedUser {
            uid,
            gid,
            additional_gids: extra.to_vec(),
        }
    }

    #[test]
    fn empty_image_user_is_root_with_its_groups() {
        assert_eq!(r(&UserSpec::default(), ""), Ok(user(0, 0, &[10])));
    }

    #[test]
    fn image_user_by_name_and_number() {
        assert_eq!(
            r(&UserSpec::default(), "skiff"),
            Ok(user(1000, 1000, &[3000]))
        );
        assert_eq!(
            r(&UserSpec::default(), "1000"),
            Ok(user(1000, 1000, &[3000]))
        );
        assert_eq!(r(&UserSpec::default(), "4242"), Ok(user(4242, 0, &[])));
        assert_eq!(
            r(&UserSpec::default(), "nobody:extra"),
            Ok(user(65534, 3000, &[]))
        );
        assert_eq!(
            r(&UserSpec::default(), "skiff:7"),
            Ok(user(1000, 7, &[3000]))
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(r(&UserSpec::default(), "ghost").is_err());
        assert!(r(&UserSpec::default(), "skiff:ghosts").is_err());
        assert!(resolve(&UserSpec::default(), "skiff", None, None).is_err());
    }

    #[test]
    fn run_as_user_overrides_image_user() {
        let spec = UserSpec {
            run_as_user: Some(1000),
            ..Default::default()
        };
        assert_eq!(r(&spec, "nobody:extra"), Ok(user(1000, 1000, &[3000])));
        let spec = UserSpec {
            run_as_user: Some(5000),
            ..Default::default()
        };
        assert_eq!(r(&spec, ""), Ok(user(5000, 0, &[])));
    }

    #[test]
    fn run_as_group_and_supplemental_groups() {
        let spec = UserSpec {
            run_as_user: Some(1000),
            run_as_group: Some(2000),
            supplemental_groups: vec![4000, 3000, 2000],
        };
        assert_eq!(r(&spec, ""), Ok(user(1000, 2000, &[3000, 4000])));
    }

    #[test]
    fn no_files_numeric_user() {
        assert_eq!(
            resolve(&UserSpec::default(), "123:456", None, None),
            Ok(user(123, 456, &[]))
        );
    }
}
