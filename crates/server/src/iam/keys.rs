//! Key hygiene actions: GetAccessKeyLastUsed, GenerateCredentialReport, GetCredentialReport
//! (`crate::keys` records the uses and writes the report).

use http::StatusCode;

use crate::account::AccountRecord;
use crate::error::S3Error;
use crate::keys::Recorder;
use crate::s3::route::Query;
use crate::state::State;
use crate::xml::XmlWriter;

use super::{required, xml_date};

/// The resource GetAccessKeyLastUsed is authorized on: the key owner's user ARN (the action's
/// resource type is `user`,
/// https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html),
/// the account's root ARN for the root key, and, for a key keyhole never issued,
/// `arn:aws:iam::ACCOUNT:user/*` (only a caller allowed to read every user's keys learns that the
/// key does not exist; anyone else is denied, as for another user's key).
pub fn last_used_resource(state: &State, account: &AccountRecord, key: &str) -> String {
    let id = &account.account_id;
    if key == account.root_access_key_id {
        return format!("arn:aws:iam::{id}:root");
    }
    let snapshot = state.snapshot();
    match snapshot.keys.get(key) {
        Some(k) => snapshot
            .users
            .get(&k.user)
            .map(|u| u.arn.clone())
            .unwrap_or_else(|| format!("arn:aws:iam::{id}:user/{}", k.user)),
        None => format!("arn:aws:iam::{id}:user/*"),
    }
}

/// GetAccessKeyLastUsed
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccessKeyLastUsed.html): the
/// owner's name (`root` for the root key) and `AccessKeyLastUsed`: `LastUsedDate`, `ServiceName`
/// and `Region` of the last request made with the key, `N/A` (and no date) for a key never used
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_AccessKeyLastUsed.html).
pub fn get_access_key_last_used(
    state: &State,
    recorder: &Recorder,
    account: &AccountRecord,
    q: &Query,
    w: &mut XmlWriter,
    result: &str,
) -> Result<(), S3Error> {
    let key = required(q, "AccessKeyId")?;
    let owner = if key == account.root_access_key_id {
        "root".to_owned()
    } else {
        state.key_owner(key).ok_or_else(|| {
            S3Error::new(
                "NoSuchEntity",
                StatusCode::NOT_FOUND,
                format!("The Access Key with id {key} cannot be found."),
            )
        })?
    };
    let used = crate::keys::last_used(state, recorder, key)?;
    w.open(result);
    w.open("AccessKeyLastUsed");
    match &used {
        Some(u) => {
            let date = chrono::DateTime::from_timestamp_millis(u.at_ms)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default();
            w.elem("LastUsedDate", &date);
            w.elem("ServiceName", &u.service);
            w.elem("Region", &u.region);
        }
        None => {
            w.elem("ServiceName", "N/A");
            w.elem("Region", "N/A");
        }
    }
    w.close("AccessKeyLastUsed");
    w.elem("UserName", &owner);
    w.close(result);
    Ok(())
}

/// GenerateCredentialReport
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GenerateCredentialReport.html): a
/// report younger than four hours is current (`COMPLETE`); otherwise a new one is made
/// (`STARTED`). keyhole builds it at once, so the next call (or GetCredentialReport) finds it.
pub fn generate_credential_report(
    state: &State,
    recorder: &Recorder,
    account: &AccountRecord,
    w: &mut XmlWriter,
    result: &str,
) -> Result<(), S3Error> {
    let now = chrono::Utc::now();
    let latest = state.credential_report()?;
    let current = latest
        .as_ref()
        .is_some_and(|r| now.timestamp() - r.generated_at < crate::keys::REPORT_MAX_AGE_SECS);
    w.open(result);
    if current {
        w.elem("State", "COMPLETE");
    } else {
        crate::keys::generate_report(state, recorder, account, now)?;
        // AWS's words when there is no report; an expired one is named as such.
        w.elem(
            "Description",
            if latest.is_none() {
                "No report exists. Starting a new report generation task"
            } else {
                "The latest report is older than four hours. Starting a new report generation task"
            },
        );
        w.elem("State", "STARTED");
    }
    w.close(result);
    Ok(())
}

/// GetCredentialReport
/// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetCredentialReport.html):
/// `Content` (the CSV, base64), `ReportFormat` `text/csv`, `GeneratedTime`; `ReportNotPresent`
/// (410) before one was generated, `ReportExpired` (410) once it is older than four hours.
pub fn get_credential_report(
    state: &State,
    w: &mut XmlWriter,
    result: &str,
) -> Result<(), S3Error> {
    use base64::Engine;
    let Some(report) = state.credential_report()? else {
        return Err(S3Error::new(
            "ReportNotPresent",
            StatusCode::GONE,
            "The credential report does not exist. To generate a credential report, use GenerateCredentialReport.",
        ));
    };
    if chrono::Utc::now().timestamp() - report.generated_at >= crate::keys::REPORT_MAX_AGE_SECS {
        return Err(S3Error::new(
            "ReportExpired",
            StatusCode::GONE,
            format!(
                "The most recent credential report (generated {}) has expired: reports are current for four hours. To generate a new credential report, use GenerateCredentialReport.",
                report.generated
            ),
        ));
    }
    w.open(result);
    w.elem(
        "Content",
        &base64::engine::general_purpose::STANDARD.encode(report.content.as_bytes()),
    );
    w.elem("ReportFormat", "text/csv");
    w.elem("GeneratedTime", &xml_date(&report.generated));
    w.close(result);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::key_usage::StoredReport;

    fn account() -> AccountRecord {
        AccountRecord {
            account_id: "123456789012".into(),
            root_access_key_id: "AKIAROOT0000000000000".into(),
            created: "2026-01-01T00:00:00Z".into(),
        }
    }

    /// "Getting credential reports": a report older than four hours is not current; Get answers
    /// `ReportExpired` (410) and Generate makes a new one (`STARTED`), after which Get serves it.
    #[test]
    fn a_report_older_than_four_hours_is_expired_and_generated_again() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path(), &[1u8; 32], "123456789012").unwrap();
        let recorder = Recorder::default();
        let old = chrono::Utc::now().timestamp() - crate::keys::REPORT_MAX_AGE_SECS - 1;
        state
            .put_credential_report(&StoredReport {
                generated: "2026-01-01T00:00:00Z".into(),
                generated_at: old,
                content: "old".into(),
            })
            .unwrap();
        let e = get_credential_report(&state, &mut XmlWriter::new(), "R").unwrap_err();
        assert_eq!((e.code(), e.status()), ("ReportExpired", StatusCode::GONE));
        let mut w = XmlWriter::new();
        w.root("X");
        generate_credential_report(&state, &recorder, &account(), &mut w, "R").unwrap();
        w.close("X");
        let answer = w.finish();
        assert!(answer.contains("<State>STARTED</State>"), "{answer}");
        assert!(answer.contains("older than four hours"), "{answer}");
        let mut w = XmlWriter::new();
        w.root("X");
        get_credential_report(&state, &mut w, "R").unwrap();
        w.close("X");
        assert!(w.finish().contains("<ReportFormat>text/csv</ReportFormat>"));
        let mut w = XmlWriter::new();
        w.root("X");
        generate_credential_report(&state, &recorder, &account(), &mut w, "R").unwrap();
        w.close("X");
        assert!(w.finish().contains("<State>COMPLETE</State>"));
    }
}
