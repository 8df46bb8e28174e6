export AWS_CONFIG_FILE=/dev/null AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export EP=http://127.0.0.1:19501 KEYHOLE_ENDPOINT=http://127.0.0.1:19501
export D=/work/review/attack/data2 W=/work/review/attack/repro
mkdir -p $W
aws() { /work/main/.venv/bin/aws --endpoint-url $EP "$@"; }
kh() { /work/review/keyhole "$@"; }
as_root() { AWS_SHARED_CREDENTIALS_FILE=$D/root-credentials "$@"; }
# mkuser NAME POLICYJSON -> writes $W/NAME.creds
mkuser() { as_root aws iam create-user --user-name $1 >/dev/null; [ -n "$2" ] && as_root aws iam put-user-policy --user-name $1 --policy-name p --policy-document "$2";
  read -r AK SK < <(as_root aws iam create-access-key --user-name $1 --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text)
  printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$AK" "$SK" > $W/$1.creds; }
as() { local u=$1; shift; AWS_SHARED_CREDENTIALS_FILE=$W/$u.creds "$@"; }
