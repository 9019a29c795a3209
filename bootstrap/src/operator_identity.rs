//! Who runs an operator's command line (`api projections …`, `api dead-letters …`,
//! `worker replay`), as the audit trail names them: `cli:<user>`.

use std::os::unix::fs::MetadataExt;

/// `cli:` and the login name: `$USER`, else `$LOGNAME`, else the name the system's user
/// database gives this process's user id (a container or a cron job often sets neither
/// variable), else `uid:<n>`.
pub fn cli_operator() -> String {
    let from_env = ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
    let user = from_env.unwrap_or_else(|| match process_uid() {
        Some(uid) => user_name(uid).unwrap_or_else(|| format!("uid:{uid}")),
        None => "unknown".to_owned(),
    });
    format!("cli:{user}")
}

/// The owner of `/proc/self` is the process's user.
fn process_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The name of `uid` in `/etc/passwd` (`name:password:uid:…`).
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let uid_field = fields.nth(1)?;
        (uid_field.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_user_has_a_name_without_any_variable() {
        let uid = process_uid().expect("Linux has /proc/self");
        let name = user_name(uid).expect("this user is in /etc/passwd");
        assert!(!name.is_empty());
    }
}
