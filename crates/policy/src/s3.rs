//! The S3 action catalogue and the condition-key catalogue with value types.
//!
//! Source: "Actions, resources, and condition keys for Amazon S3"
//! (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html>)
//! and "AWS global condition context keys"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html>).
//! Written by hand from those pages (the AWS machine-readable reference was not reachable from
//! the build machine); every S3 action has its access level, resource types and the
//! action-specific condition keys, and every action also accepts the keys in [`COMMON_KEYS`].
//! Unknown actions in policies stay valid (AWS accepts them); the linter reports them.
//!
//! The 22 actions AWS added recently (S3 Metadata tables, object annotations, bucket ABAC,
//! `ListCallerAccessGrants`, `PauseReplication`, `UpdateObjectEncryption`,
//! `AllowVendedLogDeliveryForResource`) were added from the current version of the S3 page
//! (read in full from a stored copy of its markdown rendition; search excerpts only show page
//! beginnings). Their key lists are the page's keys minus [`COMMON_KEYS`], so unlike the older
//! entries they include the tag keys the page now shows on almost every action
//! (`aws:ResourceTag/`, `s3:BucketTag/`, `s3:AccessPointTag/`). Where the page lists both an
//! `accesspointobject` and an `object` row, the catalogue records [`ResourceType::Object`], as
//! for the older object actions (there is no access-point-object resource type here yet).

/// The value type of a condition key, which decides the operators that make sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `String*` operators.
    String,
    /// `ArrayOfString`: a multi-valued string key (use `ForAnyValue:`/`ForAllValues:`).
    ArrayOfString,
    /// `Numeric*` operators.
    Numeric,
    /// `Date*` operators.
    Date,
    /// `Bool`.
    Bool,
    /// `IpAddress`.
    Ip,
    /// `Arn*` operators.
    Arn,
    /// `ArrayOfArn`: multi-valued ARNs.
    ArrayOfArn,
}

/// A condition key: its name (a trailing `/` marks a key family such as
/// `s3:ExistingObjectTag/<tag-key>`) and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditionKey {
    /// The key name as AWS spells it; ends with `/` for families.
    pub name: &'static str,
    /// The value type.
    pub kind: KeyType,
}

/// S3 resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// `arn:${Partition}:s3:::${BucketName}`.
    Bucket,
    /// `arn:${Partition}:s3:::${BucketName}/${ObjectName}`.
    Object,
    /// `arn:${Partition}:s3:${Region}:${Account}:accesspoint/${AccessPointName}`.
    AccessPoint,
    /// `arn:${Partition}:s3-object-lambda:${Region}:${Account}:accesspoint/${Name}`.
    ObjectLambdaAccessPoint,
    /// `arn:${Partition}:s3::${Account}:accesspoint/${AccessPointAlias}`.
    MultiRegionAccessPoint,
    /// `arn:${Partition}:s3:${Region}:${Account}:async-request/mrap/${Operation}/${Token}`.
    MultiRegionAccessPointRequest,
    /// `arn:${Partition}:s3:${Region}:${Account}:job/${JobId}`.
    Job,
    /// `arn:${Partition}:s3:${Region}:${Account}:storage-lens/${ConfigId}`.
    StorageLensConfiguration,
    /// `arn:${Partition}:s3:${Region}:${Account}:storage-lens-group/${Name}`.
    StorageLensGroup,
    /// `arn:${Partition}:s3:${Region}:${Account}:access-grants/default`.
    AccessGrantsInstance,
    /// `arn:${Partition}:s3:${Region}:${Account}:access-grants/default/location/${Token}`.
    AccessGrantsLocation,
    /// `arn:${Partition}:s3:${Region}:${Account}:access-grants/default/grant/${Token}`.
    AccessGrant,
}

/// Access level of an action, as in the AWS tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLevel {
    /// List.
    List,
    /// Read.
    Read,
    /// Write.
    Write,
    /// Permissions management.
    PermissionsManagement,
    /// Tagging.
    Tagging,
}

/// One S3 IAM action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// The action without the `s3:` prefix, e.g. `GetObject`.
    pub name: &'static str,
    /// Access level.
    pub access: AccessLevel,
    /// Resource types the action applies to (empty: only `*`).
    pub resources: &'static [ResourceType],
    /// Action-specific condition keys (the [`COMMON_KEYS`] apply as well).
    pub condition_keys: &'static [&'static str],
}

use AccessLevel::{List as L, PermissionsManagement as P, Read as R, Tagging as T, Write as W};
use ResourceType as Rt;

/// Keys every S3 request may carry (authentication details, TLS, access points).
pub const COMMON_KEYS: &[&str] = &[
    "s3:AccessPointNetworkOrigin",
    "s3:DataAccessPointAccount",
    "s3:DataAccessPointArn",
    "s3:ResourceAccount",
    "s3:TlsVersion",
    "s3:authType",
    "s3:signatureAge",
    "s3:signatureversion",
    "s3:x-amz-content-sha256",
];

const BKT: &[ResourceType] = &[Rt::Bucket];
const OBJ: &[ResourceType] = &[Rt::Object];
const AP: &[ResourceType] = &[Rt::AccessPoint];
const JOB: &[ResourceType] = &[Rt::Job];
const MRAP: &[ResourceType] = &[Rt::MultiRegionAccessPoint];
const OLAP: &[ResourceType] = &[Rt::ObjectLambdaAccessPoint];
const SL: &[ResourceType] = &[Rt::StorageLensConfiguration];
const SLG: &[ResourceType] = &[Rt::StorageLensGroup];
const AGI: &[ResourceType] = &[Rt::AccessGrantsInstance];
const AGL: &[ResourceType] = &[Rt::AccessGrantsLocation];
const AG: &[ResourceType] = &[Rt::AccessGrant];
const NONE: &[ResourceType] = &[];
const NK: &[&str] = &[];

const K_LIST: &[&str] = &["s3:delimiter", "s3:max-keys", "s3:prefix"];
const K_EXISTING_TAG: &[&str] = &["s3:ExistingObjectTag/"];
const K_VERSION: &[&str] = &["s3:ExistingObjectTag/", "s3:versionid"];
const K_ACL: &[&str] = &[
    "s3:x-amz-acl",
    "s3:x-amz-grant-full-control",
    "s3:x-amz-grant-read",
    "s3:x-amz-grant-read-acp",
    "s3:x-amz-grant-write",
    "s3:x-amz-grant-write-acp",
];
const K_OBJ_ACL: &[&str] = &[
    "s3:ExistingObjectTag/",
    "s3:x-amz-acl",
    "s3:x-amz-grant-full-control",
    "s3:x-amz-grant-read",
    "s3:x-amz-grant-read-acp",
    "s3:x-amz-grant-write",
    "s3:x-amz-grant-write-acp",
];
const K_OBJ_VERSION_ACL: &[&str] = &[
    "s3:ExistingObjectTag/",
    "s3:versionid",
    "s3:x-amz-acl",
    "s3:x-amz-grant-full-control",
    "s3:x-amz-grant-read",
    "s3:x-amz-grant-read-acp",
    "s3:x-amz-grant-write",
    "s3:x-amz-grant-write-acp",
];
const K_PUT_OBJECT: &[&str] = &[
    "s3:ObjectCreationOperation",
    "s3:RequestObjectTag/",
    "s3:RequestObjectTagKeys",
    "s3:object-lock-legal-hold",
    "s3:object-lock-mode",
    "s3:object-lock-remaining-retention-days",
    "s3:object-lock-retain-until-date",
    "s3:if-match",
    "s3:if-none-match",
    "s3:x-amz-acl",
    "s3:x-amz-copy-source",
    "s3:x-amz-grant-full-control",
    "s3:x-amz-grant-read",
    "s3:x-amz-grant-read-acp",
    "s3:x-amz-grant-write",
    "s3:x-amz-grant-write-acp",
    "s3:x-amz-metadata-directive",
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:x-amz-server-side-encryption-customer-algorithm",
    "s3:x-amz-storage-class",
    "s3:x-amz-website-redirect-location",
];
const K_TAGGING: &[&str] = &[
    "s3:ExistingObjectTag/",
    "s3:RequestObjectTag/",
    "s3:RequestObjectTagKeys",
];
const K_VERSION_TAGGING: &[&str] = &[
    "s3:ExistingObjectTag/",
    "s3:RequestObjectTag/",
    "s3:RequestObjectTagKeys",
    "s3:versionid",
];
const K_CREATE_BUCKET: &[&str] = &[
    "s3:LocationConstraint",
    "s3:x-amz-acl",
    "s3:x-amz-grant-full-control",
    "s3:x-amz-grant-read",
    "s3:x-amz-grant-read-acp",
    "s3:x-amz-grant-write",
    "s3:x-amz-grant-write-acp",
    "s3:x-amz-object-ownership",
];
const K_RETENTION: &[&str] = &[
    "s3:ExistingObjectTag/",
    "s3:object-lock-mode",
    "s3:object-lock-remaining-retention-days",
    "s3:object-lock-retain-until-date",
    "s3:versionid",
];
const K_LEGAL_HOLD: &[&str] = &[
    "s3:ExistingObjectTag/",
    "s3:object-lock-legal-hold",
    "s3:versionid",
];
const K_BUCKET_LOCK: &[&str] = &["s3:TlsVersion"];
const K_JOB: &[&str] = &["s3:ExistingJobOperation", "s3:ExistingJobPriority"];
const K_JOB_PRIORITY: &[&str] = &[
    "s3:ExistingJobOperation",
    "s3:ExistingJobPriority",
    "s3:RequestJobPriority",
];
const K_CREATE_JOB: &[&str] = &["s3:RequestJobOperation", "s3:RequestJobPriority"];
const K_CREATE_AP: &[&str] = &["s3:locationconstraint", "s3:AccessPointNetworkOrigin"];
const K_BUCKET_TAGS: &[&str] = &["aws:RequestTag/", "aws:TagKeys"];
/// Actions the S3 page lists with only the tag keys of the bucket and object resource types
/// (besides [`COMMON_KEYS`]).
const K_RESOURCE_TAGS: &[&str] = &["aws:ResourceTag/", "s3:BucketTag/"];
/// Object annotation actions (S3 page, `GetObjectAnnotation` and its siblings).
const K_ANNOTATION: &[&str] = &[
    "aws:ResourceTag/",
    "s3:AccessPointTag/",
    "s3:BucketTag/",
    "s3:ExistingObjectTag/",
];
const K_ANNOTATION_VERSION: &[&str] = &[
    "aws:ResourceTag/",
    "s3:AccessPointTag/",
    "s3:BucketTag/",
    "s3:ExistingObjectTag/",
    "s3:versionid",
];
const K_ANNOTATION_WRITE: &[&str] = &[
    "aws:ResourceTag/",
    "s3:AccessPointTag/",
    "s3:BucketTag/",
    "s3:ExistingObjectTag/",
    "s3:x-amz-object-if-match",
];
const K_ANNOTATION_VERSION_WRITE: &[&str] = &[
    "aws:ResourceTag/",
    "s3:AccessPointTag/",
    "s3:BucketTag/",
    "s3:ExistingObjectTag/",
    "s3:versionid",
    "s3:x-amz-object-if-match",
];
const K_ANNOTATION_LIST: &[&str] = &[
    "aws:ResourceTag/",
    "s3:AccessPointTag/",
    "s3:BucketTag/",
    "s3:ExistingObjectTag/",
    "s3:annotation-prefix",
    "s3:max-annotation-results",
];
const K_ANNOTATION_VERSION_LIST: &[&str] = &[
    "aws:ResourceTag/",
    "s3:AccessPointTag/",
    "s3:BucketTag/",
    "s3:ExistingObjectTag/",
    "s3:annotation-prefix",
    "s3:max-annotation-results",
    "s3:versionid",
];
const K_ACCESS_GRANTS_TAGS: &[&str] = &["aws:RequestTag/", "aws:ResourceTag/", "aws:TagKeys"];

macro_rules! actions {
    ($($name:literal, $lvl:expr, $res:expr, $keys:expr;)*) => {
        /// Every S3 IAM action, sorted by name.
        pub const ACTIONS: &[Action] = &[$(Action { name: $name, access: $lvl, resources: $res, condition_keys: $keys }),*];
    };
}

actions! {
    "AbortMultipartUpload", W, OBJ, NK;
    "AllowVendedLogDeliveryForResource", R, BKT, &["aws:ResourceTag/", "s3:BucketTag/", "s3:deliverySourceArn", "s3:logType", "s3:resourceArnBeingAuthorized"];
    "AssociateAccessGrantsIdentityCenter", P, AGI, NK;
    "BypassGovernanceRetention", P, OBJ, &["s3:RequestObjectTag/", "s3:RequestObjectTagKeys", "s3:x-amz-acl", "s3:x-amz-content-sha256", "s3:x-amz-copy-source", "s3:x-amz-grant-full-control", "s3:x-amz-grant-read", "s3:x-amz-grant-read-acp", "s3:x-amz-grant-write", "s3:x-amz-grant-write-acp", "s3:x-amz-metadata-directive", "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id", "s3:x-amz-storage-class", "s3:x-amz-website-redirect-location"];
    "CreateAccessGrant", W, AGL, K_BUCKET_TAGS;
    "CreateAccessGrantsInstance", W, AGI, K_BUCKET_TAGS;
    "CreateAccessGrantsLocation", W, AGI, K_BUCKET_TAGS;
    "CreateAccessPoint", W, AP, K_CREATE_AP;
    "CreateAccessPointForObjectLambda", W, OLAP, NK;
    "CreateBucket", W, BKT, K_CREATE_BUCKET;
    "CreateBucketMetadataTableConfiguration", W, BKT, K_RESOURCE_TAGS;
    "CreateJob", W, NONE, K_CREATE_JOB;
    "CreateMultiRegionAccessPoint", W, MRAP, NK;
    "CreateStorageLensGroup", W, SLG, K_BUCKET_TAGS;
    "DeleteAccessGrant", W, AG, NK;
    "DeleteAccessGrantsInstance", W, AGI, NK;
    "DeleteAccessGrantsInstanceResourcePolicy", P, AGI, NK;
    "DeleteAccessGrantsLocation", W, AGL, NK;
    "DeleteAccessPoint", W, AP, NK;
    "DeleteAccessPointForObjectLambda", W, OLAP, NK;
    "DeleteAccessPointPolicy", P, AP, NK;
    "DeleteAccessPointPolicyForObjectLambda", P, OLAP, NK;
    "DeleteBucket", W, BKT, NK;
    "DeleteBucketMetadataTableConfiguration", W, BKT, K_RESOURCE_TAGS;
    "DeleteBucketPolicy", P, BKT, NK;
    "DeleteBucketWebsite", W, BKT, NK;
    "DeleteJobTagging", T, JOB, K_JOB;
    "DeleteMultiRegionAccessPoint", W, MRAP, NK;
    // `s3:if-match`: "Enforce conditional deletes on Amazon S3 buckets" conditions
    // s3:DeleteObject on it (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-delete-enforce.html).
    "DeleteObject", W, OBJ, &["s3:if-match"];
    "DeleteObjectAnnotation", W, OBJ, K_ANNOTATION_WRITE;
    "DeleteObjectTagging", T, OBJ, K_EXISTING_TAG;
    "DeleteObjectVersion", W, OBJ, &["s3:versionid"];
    "DeleteObjectVersionAnnotation", W, OBJ, K_ANNOTATION_VERSION_WRITE;
    "DeleteObjectVersionTagging", T, OBJ, K_VERSION;
    "DeleteStorageLensConfiguration", W, SL, NK;
    "DeleteStorageLensConfigurationTagging", T, SL, NK;
    "DeleteStorageLensGroup", W, SLG, NK;
    "DescribeJob", R, JOB, NK;
    "DescribeMultiRegionAccessPointOperation", R, &[Rt::MultiRegionAccessPointRequest], NK;
    "DissociateAccessGrantsIdentityCenter", P, AGI, NK;
    "GetAccelerateConfiguration", R, BKT, NK;
    "GetAccessGrant", R, AG, NK;
    "GetAccessGrantsInstance", R, AGI, NK;
    "GetAccessGrantsInstanceForPrefix", R, NONE, NK;
    "GetAccessGrantsInstanceResourcePolicy", R, AGI, NK;
    "GetAccessGrantsLocation", R, AGL, NK;
    "GetAccessPoint", R, NONE, NK;
    "GetAccessPointConfigurationForObjectLambda", R, OLAP, NK;
    "GetAccessPointForObjectLambda", R, OLAP, NK;
    "GetAccessPointPolicy", R, AP, NK;
    "GetAccessPointPolicyForObjectLambda", R, OLAP, NK;
    "GetAccessPointPolicyStatus", R, AP, NK;
    "GetAccessPointPolicyStatusForObjectLambda", R, OLAP, NK;
    "GetAccountPublicAccessBlock", R, NONE, NK;
    "GetAnalyticsConfiguration", R, BKT, NK;
    "GetBucketAbac", R, BKT, K_RESOURCE_TAGS;
    "GetBucketAcl", R, BKT, NK;
    "GetBucketCORS", R, BKT, NK;
    "GetBucketLocation", R, BKT, NK;
    "GetBucketLogging", R, BKT, NK;
    "GetBucketMetadataTableConfiguration", R, BKT, K_RESOURCE_TAGS;
    "GetBucketNotification", R, BKT, NK;
    "GetBucketObjectLockConfiguration", R, BKT, K_BUCKET_LOCK;
    "GetBucketOwnershipControls", R, BKT, NK;
    "GetBucketPolicy", R, BKT, NK;
    "GetBucketPolicyStatus", R, BKT, NK;
    "GetBucketPublicAccessBlock", R, BKT, NK;
    "GetBucketRequestPayment", R, BKT, NK;
    "GetBucketTagging", R, BKT, NK;
    "GetBucketVersioning", R, BKT, NK;
    "GetBucketWebsite", R, BKT, NK;
    "GetDataAccess", R, AGI, NK;
    "GetEncryptionConfiguration", R, BKT, NK;
    "GetIntelligentTieringConfiguration", R, BKT, NK;
    "GetInventoryConfiguration", R, BKT, NK;
    "GetJobTagging", R, JOB, NK;
    "GetLifecycleConfiguration", R, BKT, NK;
    "GetMetricsConfiguration", R, BKT, NK;
    "GetMultiRegionAccessPoint", R, MRAP, NK;
    "GetMultiRegionAccessPointPolicy", R, MRAP, NK;
    "GetMultiRegionAccessPointPolicyStatus", R, MRAP, NK;
    "GetMultiRegionAccessPointRoutes", R, MRAP, NK;
    "GetObject", R, OBJ, K_EXISTING_TAG;
    "GetObjectAcl", R, OBJ, K_EXISTING_TAG;
    "GetObjectAnnotation", R, OBJ, K_ANNOTATION;
    "GetObjectAttributes", R, OBJ, K_EXISTING_TAG;
    "GetObjectLegalHold", R, OBJ, K_EXISTING_TAG;
    "GetObjectRetention", R, OBJ, K_EXISTING_TAG;
    "GetObjectTagging", R, OBJ, K_EXISTING_TAG;
    "GetObjectTorrent", R, OBJ, K_EXISTING_TAG;
    "GetObjectVersion", R, OBJ, K_VERSION;
    "GetObjectVersionAcl", R, OBJ, K_VERSION;
    "GetObjectVersionAnnotation", R, OBJ, K_ANNOTATION_VERSION;
    "GetObjectVersionAnnotationForReplication", R, OBJ, K_RESOURCE_TAGS;
    "GetObjectVersionAttributes", R, OBJ, K_VERSION;
    "GetObjectVersionForReplication", R, OBJ, NK;
    "GetObjectVersionTagging", R, OBJ, K_VERSION;
    "GetObjectVersionTorrent", R, OBJ, K_VERSION;
    "GetReplicationConfiguration", R, BKT, NK;
    "GetStorageLensConfiguration", R, SL, NK;
    "GetStorageLensConfigurationTagging", R, SL, NK;
    "GetStorageLensDashboard", R, SL, NK;
    "GetStorageLensGroup", R, SLG, NK;
    "InitiateReplication", W, OBJ, NK;
    "ListAccessGrants", L, AGI, NK;
    "ListAccessGrantsInstances", L, NONE, NK;
    "ListAccessGrantsLocations", L, AGI, NK;
    "ListAccessPoints", L, NONE, NK;
    "ListAccessPointsForObjectLambda", L, NONE, NK;
    "ListAllMyBuckets", L, NONE, NK;
    "ListBucket", L, BKT, K_LIST;
    "ListBucketMultipartUploads", L, BKT, NK;
    "ListBucketVersions", L, BKT, K_LIST;
    "ListCallerAccessGrants", L, AGI, K_ACCESS_GRANTS_TAGS;
    "ListJobs", L, NONE, NK;
    "ListMultiRegionAccessPoints", L, NONE, NK;
    "ListMultipartUploadParts", L, OBJ, NK;
    "ListObjectAnnotations", L, OBJ, K_ANNOTATION_LIST;
    "ListObjectVersionAnnotations", L, OBJ, K_ANNOTATION_VERSION_LIST;
    "ListStorageLensConfigurations", L, NONE, NK;
    "ListStorageLensGroups", L, NONE, NK;
    "ListTagsForResource", R, &[Rt::StorageLensGroup, Rt::AccessGrantsInstance, Rt::AccessGrantsLocation, Rt::AccessGrant], NK;
    "ObjectOwnerOverrideToBucketOwner", P, OBJ, NK;
    "PauseReplication", W, BKT, &["aws:ResourceTag/", "s3:BucketTag/", "s3:destinationRegion"];
    "PutAccelerateConfiguration", W, BKT, NK;
    "PutAccessGrantsInstanceResourcePolicy", P, AGI, NK;
    "PutAccessPointConfigurationForObjectLambda", W, OLAP, NK;
    "PutAccessPointPolicy", P, AP, NK;
    "PutAccessPointPolicyForObjectLambda", P, OLAP, NK;
    "PutAccessPointPublicAccessBlock", P, NONE, NK;
    "PutAccountPublicAccessBlock", P, NONE, NK;
    "PutAnalyticsConfiguration", W, BKT, NK;
    "PutBucketAbac", W, BKT, K_RESOURCE_TAGS;
    "PutBucketAcl", P, BKT, K_ACL;
    "PutBucketCORS", W, BKT, NK;
    "PutBucketLogging", W, BKT, NK;
    "PutBucketNotification", W, BKT, NK;
    "PutBucketObjectLockConfiguration", W, BKT, K_BUCKET_LOCK;
    "PutBucketOwnershipControls", W, BKT, &["s3:x-amz-object-ownership"];
    "PutBucketPolicy", P, BKT, NK;
    "PutBucketPublicAccessBlock", P, BKT, NK;
    "PutBucketRequestPayment", W, BKT, NK;
    "PutBucketTagging", T, BKT, NK;
    "PutBucketVersioning", W, BKT, NK;
    "PutBucketWebsite", W, BKT, NK;
    "PutEncryptionConfiguration", W, BKT, NK;
    "PutIntelligentTieringConfiguration", W, BKT, NK;
    "PutInventoryConfiguration", W, BKT, &["s3:InventoryAccessibleOptionalFields"];
    "PutJobTagging", T, JOB, K_JOB;
    "PutLifecycleConfiguration", W, BKT, NK;
    "PutMetricsConfiguration", W, BKT, NK;
    "PutMultiRegionAccessPointPolicy", P, MRAP, NK;
    "PutObject", W, OBJ, K_PUT_OBJECT;
    "PutObjectAcl", P, OBJ, K_OBJ_ACL;
    "PutObjectAnnotation", W, OBJ, K_ANNOTATION_WRITE;
    "PutObjectLegalHold", W, OBJ, K_LEGAL_HOLD;
    "PutObjectRetention", W, OBJ, K_RETENTION;
    "PutObjectTagging", T, OBJ, K_TAGGING;
    "PutObjectVersionAcl", P, OBJ, K_OBJ_VERSION_ACL;
    "PutObjectVersionAnnotation", W, OBJ, K_ANNOTATION_VERSION_WRITE;
    "PutObjectVersionTagging", T, OBJ, K_VERSION_TAGGING;
    "PutReplicationConfiguration", W, BKT, NK;
    "PutStorageLensConfiguration", W, NONE, K_BUCKET_TAGS;
    "PutStorageLensConfigurationTagging", T, SL, K_BUCKET_TAGS;
    "ReplicateDelete", W, OBJ, NK;
    "ReplicateObject", W, OBJ, &["s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id"];
    "ReplicateObjectAnnotation", W, OBJ, K_RESOURCE_TAGS;
    "ReplicateTags", T, OBJ, NK;
    "RestoreObject", W, OBJ, NK;
    "SubmitMultiRegionAccessPointRoutes", W, MRAP, NK;
    "TagResource", T, &[Rt::StorageLensGroup, Rt::AccessGrantsInstance, Rt::AccessGrantsLocation, Rt::AccessGrant], K_BUCKET_TAGS;
    "UntagResource", T, &[Rt::StorageLensGroup, Rt::AccessGrantsInstance, Rt::AccessGrantsLocation, Rt::AccessGrant], &["aws:TagKeys"];
    "UpdateAccessGrantsLocation", W, AGL, NK;
    "UpdateBucketMetadataAnnotationTableConfiguration", W, BKT, K_RESOURCE_TAGS;
    "UpdateBucketMetadataInventoryTableConfiguration", W, BKT, K_RESOURCE_TAGS;
    "UpdateBucketMetadataJournalTableConfiguration", W, BKT, K_RESOURCE_TAGS;
    "UpdateJobPriority", W, JOB, K_JOB_PRIORITY;
    "UpdateJobStatus", W, JOB, &["s3:ExistingJobOperation", "s3:ExistingJobPriority", "s3:JobSuspendedCause"];
    "UpdateObjectEncryption", W, OBJ, &["aws:ResourceTag/", "s3:AccessPointTag/", "s3:BucketTag/", "s3:ExistingObjectTag/", "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id"];
    "UpdateStorageLensGroup", W, SLG, NK;
}

use KeyType::{
    Arn as KArn, ArrayOfString as KArr, Bool as KBool, Date as KDate, Ip as KIp, Numeric as KNum,
    String as KStr,
};

macro_rules! keys {
    ($($name:literal => $t:expr,)*) => {
        /// Condition keys with their types: the S3 keys and the global `aws:` keys keyhole fills.
        pub const CONDITION_KEYS: &[ConditionKey] = &[$(ConditionKey { name: $name, kind: $t }),*];
    };
}

keys! {
    "s3:AccessGrantsInstanceArn" => KArn,
    "s3:AccessPointNetworkOrigin" => KStr,
    "s3:DataAccessPointAccount" => KStr,
    "s3:AccessPointTag/" => KStr,
    "s3:BucketTag/" => KStr,
    "s3:DataAccessPointArn" => KArn,
    "s3:ExistingJobOperation" => KStr,
    "s3:ExistingJobPriority" => KNum,
    "s3:ExistingObjectTag/" => KStr,
    "s3:InventoryAccessibleOptionalFields" => KArr,
    "s3:JobSuspendedCause" => KStr,
    "s3:LocationConstraint" => KStr,
    "s3:ObjectCreationOperation" => KBool, // https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html (used with Bool)
    "s3:RequestJobOperation" => KStr,
    "s3:RequestJobPriority" => KNum,
    "s3:RequestObjectTag/" => KStr,
    "s3:RequestObjectTagKeys" => KArr,
    "s3:ResourceAccount" => KStr,
    "s3:TlsVersion" => KNum,
    "s3:annotation-prefix" => KStr,
    "s3:authType" => KStr,
    "s3:delimiter" => KStr,
    "s3:deliverySourceArn" => KArn,
    "s3:destinationRegion" => KStr,
    "s3:locationconstraint" => KStr,
    "s3:if-match" => KStr,
    "s3:if-none-match" => KStr,
    "s3:logType" => KStr,
    "s3:max-annotation-results" => KNum,
    "s3:max-keys" => KNum,
    "s3:object-lock-legal-hold" => KStr,
    "s3:object-lock-mode" => KStr,
    "s3:object-lock-remaining-retention-days" => KNum,
    "s3:object-lock-retain-until-date" => KDate,
    "s3:prefix" => KStr,
    "s3:resourceArnBeingAuthorized" => KArn,
    "s3:signatureAge" => KNum,
    "s3:signatureversion" => KStr,
    "s3:versionid" => KStr,
    "s3:x-amz-acl" => KStr,
    "s3:x-amz-content-sha256" => KStr,
    "s3:x-amz-copy-source" => KStr,
    "s3:x-amz-grant-full-control" => KStr,
    "s3:x-amz-grant-read" => KStr,
    "s3:x-amz-grant-read-acp" => KStr,
    "s3:x-amz-grant-write" => KStr,
    "s3:x-amz-grant-write-acp" => KStr,
    "s3:x-amz-metadata-directive" => KStr,
    "s3:x-amz-object-if-match" => KStr,
    "s3:x-amz-object-ownership" => KStr,
    "s3:x-amz-server-side-encryption" => KStr,
    "s3:x-amz-server-side-encryption-aws-kms-key-id" => KArn,
    "s3:x-amz-server-side-encryption-customer-algorithm" => KStr,
    "s3:x-amz-storage-class" => KStr,
    "s3:x-amz-website-redirect-location" => KStr,
    "aws:CurrentTime" => KDate,
    "aws:EpochTime" => KDate,
    "aws:MultiFactorAuthAge" => KNum,
    "aws:MultiFactorAuthPresent" => KBool,
    "aws:PrincipalAccount" => KStr,
    "aws:PrincipalArn" => KArn,
    "aws:PrincipalIsAWSService" => KBool,
    "aws:PrincipalOrgID" => KStr,
    "aws:PrincipalTag/" => KStr,
    "aws:PrincipalType" => KStr,
    "aws:Referer" => KStr,
    "aws:RequestTag/" => KStr,
    "aws:RequestedRegion" => KStr,
    "aws:ResourceAccount" => KStr,
    "aws:ResourceTag/" => KStr,
    "aws:SecureTransport" => KBool,
    "aws:SourceAccount" => KStr,
    "aws:SourceArn" => KArn,
    "aws:SourceIdentity" => KStr,
    "aws:SourceIp" => KIp,
    "aws:SourceVpc" => KStr,
    "aws:SourceVpce" => KStr,
    "aws:TagKeys" => KArr,
    "aws:TokenIssueTime" => KDate,
    "aws:UserAgent" => KStr,
    "aws:ViaAWSService" => KBool,
    "aws:userid" => KStr,
    "aws:username" => KStr,
}

/// Looks an S3 action up, `s3:` prefix optional, case-insensitively.
pub fn action(name: &str) -> Option<&'static Action> {
    let bare = name
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("s3:"))
        .map_or(name, |_| name.get(3..).unwrap_or(name));
    ACTIONS.iter().find(|a| a.name.eq_ignore_ascii_case(bare))
}

/// The S3 actions a policy action pattern (such as `s3:Get*Tagging`) covers.
pub fn expand(pattern: &str) -> Vec<&'static Action> {
    let p = crate::pattern::Pattern::wildcard(pattern, true);
    ACTIONS
        .iter()
        .filter(|a| p.matches(&format!("s3:{}", a.name)))
        .collect()
}

/// Looks a condition key up case-insensitively; `s3:ExistingObjectTag/team` finds the
/// `s3:ExistingObjectTag/` family.
pub fn condition_key(name: &str) -> Option<&'static ConditionKey> {
    CONDITION_KEYS.iter().find(|k| {
        if k.name.ends_with('/') {
            name.len() > k.name.len()
                && name
                    .get(..k.name.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(k.name))
        } else {
            k.name.eq_ignore_ascii_case(name)
        }
    })
}

/// Whether `key` is accepted by `action` (action-specific or common S3 keys, or global `aws:`
/// keys, which apply to every action).
pub fn action_accepts_key(action: &Action, key: &str) -> bool {
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return true;
    }
    let matches = |k: &&str| {
        if k.ends_with('/') {
            key.len() > k.len()
                && key
                    .get(..k.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(k))
        } else {
            k.eq_ignore_ascii_case(key)
        }
    };
    action.condition_keys.iter().any(matches) || COMMON_KEYS.iter().any(matches)
}

/// The resource type of an S3 ARN: a bucket (`arn:aws:s3:::b`), an object (`arn:aws:s3:::b/k`),
/// or one of the regional types, recognised by their resource prefix.
pub fn resource_type(arn: &str) -> Option<ResourceType> {
    let [arn_lit, _, service, region, account, res] = crate::pattern::split_arn(arn)?;
    if arn_lit != "arn" {
        return None;
    }
    match (service, region.is_empty(), account.is_empty()) {
        ("s3", true, true) => Some(if res.contains('/') {
            Rt::Object
        } else {
            Rt::Bucket
        }),
        ("s3-object-lambda", _, _) if res.starts_with("accesspoint/") => {
            Some(Rt::ObjectLambdaAccessPoint)
        }
        ("s3", true, false) if res.starts_with("accesspoint/") => Some(Rt::MultiRegionAccessPoint),
        ("s3", false, false) => {
            let t = [
                ("accesspoint/", Rt::AccessPoint),
                ("job/", Rt::Job),
                ("storage-lens/", Rt::StorageLensConfiguration),
                ("storage-lens-group/", Rt::StorageLensGroup),
                ("async-request/mrap/", Rt::MultiRegionAccessPointRequest),
                ("access-grants/default/location/", Rt::AccessGrantsLocation),
                ("access-grants/default/grant/", Rt::AccessGrant),
                ("access-grants/default", Rt::AccessGrantsInstance),
            ];
            t.iter().find(|(p, _)| res.starts_with(p)).map(|(_, r)| *r)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_sorted_unique_and_consistent() {
        for w in ACTIONS.windows(2) {
            assert!(w[0].name < w[1].name, "{} / {}", w[0].name, w[1].name);
        }
        for a in ACTIONS {
            for k in a.condition_keys {
                assert!(
                    condition_key(k).is_some() || condition_key(&format!("{k}x")).is_some(),
                    "{} uses unknown key {k}",
                    a.name
                );
            }
        }
        for w in CONDITION_KEYS.windows(2) {
            assert_ne!(w[0].name, w[1].name);
        }
        // 158 hand-written actions plus the 22 AWS added recently; README.md and docs/STATUS.md
        // state this count.
        assert_eq!(ACTIONS.len(), 180);
    }

    /// The recently added actions as "Actions, resources, and condition keys for Amazon S3"
    /// (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html>)
    /// lists them: access level, resource type, and a condition key specific to each.
    #[test]
    fn recent_actions_follow_the_s3_authorization_reference() {
        let cases: &[(&str, AccessLevel, ResourceType, &str)] = &[
            // "Grants permission to list annotations on an object" (List; object).
            (
                "ListObjectAnnotations",
                AccessLevel::List,
                ResourceType::Object,
                "s3:max-annotation-results",
            ),
            (
                "PutObjectVersionAnnotation",
                AccessLevel::Write,
                ResourceType::Object,
                "s3:x-amz-object-if-match",
            ),
            (
                "GetObjectAnnotation",
                AccessLevel::Read,
                ResourceType::Object,
                "s3:ExistingObjectTag/classification",
            ),
            // ABAC configuration of a general purpose bucket (Read / Write; bucket*).
            (
                "GetBucketAbac",
                AccessLevel::Read,
                ResourceType::Bucket,
                "s3:BucketTag/team",
            ),
            (
                "PutBucketAbac",
                AccessLevel::Write,
                ResourceType::Bucket,
                "s3:BucketTag/team",
            ),
            // A permission-only action (AWS FIS bucket-pause-replication).
            (
                "PauseReplication",
                AccessLevel::Write,
                ResourceType::Bucket,
                "s3:destinationRegion",
            ),
            // "Grants permission to configure server access logs delivery to CloudWatch": Read.
            (
                "AllowVendedLogDeliveryForResource",
                AccessLevel::Read,
                ResourceType::Bucket,
                "s3:logType",
            ),
            (
                "ListCallerAccessGrants",
                AccessLevel::List,
                ResourceType::AccessGrantsInstance,
                "aws:ResourceTag/env",
            ),
            (
                "UpdateObjectEncryption",
                AccessLevel::Write,
                ResourceType::Object,
                "s3:x-amz-server-side-encryption-aws-kms-key-id",
            ),
            (
                "UpdateBucketMetadataJournalTableConfiguration",
                AccessLevel::Write,
                ResourceType::Bucket,
                "s3:BucketTag/team",
            ),
        ];
        // Listed among the action's own keys (`aws:` keys are accepted by every action, so
        // `action_accepts_key` alone would not tell).
        let lists = |a: &Action, key: &str| {
            a.condition_keys.iter().any(|k| {
                k.eq_ignore_ascii_case(key)
                    || (k.ends_with('/') && key.len() > k.len() && key.starts_with(k))
            })
        };
        for &(name, access, resource, key) in cases {
            let a = action(&format!("s3:{name}")).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!((a.access, a.resources), (access, &[resource][..]), "{name}");
            assert!(lists(a, key), "{name} should list {key}");
            assert!(action_accepts_key(a, key), "{name} should accept {key}");
        }
        // Annotation actions do not take the object-write keys of PutObject.
        let put_annotation = action("s3:PutObjectAnnotation").unwrap();
        assert!(!action_accepts_key(put_annotation, "s3:x-amz-acl"));
        assert!(!action_accepts_key(put_annotation, "s3:versionid"));
        // Condition-key types from the page's "Condition keys for Amazon S3" table.
        for (key, kind) in [
            ("s3:annotation-prefix", KeyType::String),
            ("s3:max-annotation-results", KeyType::Numeric),
            ("s3:x-amz-object-if-match", KeyType::String),
            ("s3:destinationRegion", KeyType::String),
            ("s3:deliverySourceArn", KeyType::Arn),
            ("s3:logType", KeyType::String),
            ("s3:resourceArnBeingAuthorized", KeyType::Arn),
        ] {
            assert_eq!(condition_key(key).map(|k| k.kind), Some(kind), "{key}");
        }
        // `s3:*Annotation*` covers the ten object annotation actions and the annotation table's.
        let names: Vec<_> = expand("s3:*Annotation*").iter().map(|a| a.name).collect();
        assert_eq!(names.len(), 11, "{names:?}");
        assert!(names.contains(&"UpdateBucketMetadataAnnotationTableConfiguration"));
    }

    #[test]
    fn lookups() {
        let g = action("s3:getobject").unwrap();
        assert_eq!(
            (g.name, g.access, g.resources),
            ("GetObject", AccessLevel::Read, &[ResourceType::Object][..])
        );
        assert!(action("ListBucket")
            .unwrap()
            .condition_keys
            .contains(&"s3:prefix"));
        assert!(action("s3:NoSuchAction").is_none());
        assert_eq!(
            condition_key("S3:ExistingObjectTag/team").unwrap().kind,
            KeyType::String
        );
        assert_eq!(condition_key("s3:max-keys").unwrap().kind, KeyType::Numeric);
        assert_eq!(condition_key("aws:SourceIp").unwrap().kind, KeyType::Ip);
        // Conditional writes: `"Bool": {"s3:ObjectCreationOperation": "true"}`
        // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html).
        assert_eq!(
            condition_key("s3:ObjectCreationOperation").unwrap().kind,
            KeyType::Bool
        );
        assert!(condition_key("s3:ExistingObjectTag/").is_none());
        let put = action("s3:PutObject").unwrap();
        assert!(action_accepts_key(put, "s3:x-amz-server-side-encryption"));
        assert!(action_accepts_key(put, "s3:signatureAge"));
        assert!(action_accepts_key(put, "aws:SourceIp"));
        assert!(!action_accepts_key(put, "s3:prefix"));
    }

    #[test]
    fn wildcard_expansion() {
        let names: Vec<_> = expand("s3:Get*Tagging").iter().map(|a| a.name).collect();
        assert!(names.contains(&"GetObjectTagging") && names.contains(&"GetBucketTagging"));
        assert!(!names.contains(&"PutObjectTagging"));
        assert_eq!(expand("s3:*").len(), ACTIONS.len());
        assert!(expand("ec2:*").is_empty());
    }

    #[test]
    fn resource_types() {
        assert_eq!(resource_type("arn:aws:s3:::b"), Some(ResourceType::Bucket));
        assert_eq!(
            resource_type("arn:aws:s3:::b/k/x"),
            Some(ResourceType::Object)
        );
        assert_eq!(
            resource_type("arn:aws:s3:us-east-1:111122223333:accesspoint/ap"),
            Some(ResourceType::AccessPoint)
        );
        assert_eq!(
            resource_type("arn:aws:s3:us-east-1:111122223333:job/j"),
            Some(ResourceType::Job)
        );
        assert_eq!(
            resource_type("arn:aws:s3::111122223333:accesspoint/m.mrap"),
            Some(ResourceType::MultiRegionAccessPoint)
        );
        assert_eq!(resource_type("arn:aws:iam::1:role/r"), None);
    }
}
