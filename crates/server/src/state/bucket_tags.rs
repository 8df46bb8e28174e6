//! Bucket tags (PutBucketTagging, GetBucketTagging, DeleteBucketTagging).
//!
//! A bucket's configuration lives in the state database beside its bucket policy and Block
//! Public Access settings, not in the object store: several gateway nodes share one state (and
//! may stand in front of one upstream, where the buckets themselves live), so a tag set put
//! through one node is the one every node answers. The tag set is kept as sent (a JSON array
//! of key/value pairs); limits are checked by the S3 handler before it gets here.

use super::db::Conn;
use super::{State, StateError};
use crate::params;

impl State {
    /// Replaces a bucket's tag set.
    pub fn put_bucket_tags(
        &self,
        bucket: &str,
        tags: &[(String, String)],
    ) -> Result<(), StateError> {
        let doc = serde_json::to_string(tags).map_err(|e| StateError::Engine(e.to_string()))?;
        self.change(|tx| {
            tx.execute(
                "INSERT INTO bucket_tags (bucket, tags) VALUES (?1, ?2)
                 ON CONFLICT (bucket) DO UPDATE SET tags = excluded.tags",
                params![bucket, doc],
            )?;
            Ok(())
        })
    }

    /// A bucket's tag set, `None` when none was put (S3's `NoSuchTagSet`).
    pub fn get_bucket_tags(
        &self,
        bucket: &str,
    ) -> Result<Option<Vec<(String, String)>>, StateError> {
        let doc = self.with_db(|db| bucket_tags_doc(db, bucket))?;
        doc.map(|d| {
            serde_json::from_str(&d).map_err(|e| {
                StateError::Engine(format!(
                    "the stored tags of bucket `{bucket}` do not parse: {e}"
                ))
            })
        })
        .transpose()
    }

    /// Removes a bucket's tag set (idempotent, as DeleteBucketTagging is).
    pub fn delete_bucket_tags(&self, bucket: &str) -> Result<(), StateError> {
        self.change(|tx| {
            tx.execute("DELETE FROM bucket_tags WHERE bucket = ?1", params![bucket])?;
            Ok(())
        })
    }
}

fn bucket_tags_doc(db: &dyn Conn, bucket: &str) -> Result<Option<String>, StateError> {
    db.query_opt(
        "SELECT tags FROM bucket_tags WHERE bucket = ?1",
        params![bucket],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_tags_are_kept_as_sent_and_forgotten_with_the_bucket() {
        let (_dir, s) = crate::state::tests::open();
        assert_eq!(s.get_bucket_tags("b").unwrap(), None);
        let tags = vec![
            ("z".to_owned(), " spaced ".to_owned()),
            ("a".to_owned(), String::new()),
        ];
        s.put_bucket_tags("b", &tags).unwrap();
        assert_eq!(s.get_bucket_tags("b").unwrap(), Some(tags));
        s.put_bucket_tags("b", &[("k".to_owned(), "v".to_owned())])
            .unwrap();
        assert_eq!(
            s.get_bucket_tags("b").unwrap(),
            Some(vec![("k".to_owned(), "v".to_owned())])
        );
        assert_eq!(s.get_bucket_tags("other").unwrap(), None);
        s.delete_bucket_tags("b").unwrap();
        assert_eq!(s.get_bucket_tags("b").unwrap(), None);
        s.delete_bucket_tags("b").unwrap();
        s.put_bucket_tags("b", &[("k".to_owned(), "v".to_owned())])
            .unwrap();
        s.forget_bucket("b").unwrap();
        assert_eq!(s.get_bucket_tags("b").unwrap(), None);
    }
}
