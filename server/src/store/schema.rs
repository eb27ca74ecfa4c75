//! Diesel table definitions, written for both backends (see migrations/postgres and
//! migrations/sqlite, which must stay column-for-column identical).

diesel::table! {
    server_meta (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    org_units (id) {
        id -> Text,
        parent_id -> Nullable<Text>,
        path -> Text,
        name -> Text,
        kind -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        display_name -> Text,
        phone -> Nullable<Text>,
        email -> Nullable<Text>,
        org_unit_id -> Nullable<Text>,
        status -> Text,
        password_hash -> Nullable<Text>,
        password_changed_at -> Nullable<Timestamp>,
        must_change_password -> Bool,
        tokens_valid_after -> Timestamp,
        failed_logins -> Integer,
        locked_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    roles (name) {
        name -> Text,
        description -> Text,
    }
}

diesel::table! {
    user_roles (user_id, role_name) {
        user_id -> Text,
        role_name -> Text,
        granted_at -> Timestamp,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        category -> Text,
        status -> Text,
        tokens_valid_after -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        client_type -> Text,
        token_endpoint_auth_method -> Text,
        secret_digest -> Nullable<Text>,
        secret_rotated_at -> Nullable<Timestamp>,
        grant_types -> Text,
        scopes -> Text,
        redirect_uris -> Text,
        post_logout_redirect_uris -> Text,
        jwks -> Nullable<Text>,
        access_token_ttl_secs -> Integer,
        refresh_token_ttl_secs -> Integer,
        first_party -> Bool,
        can_introspect -> Bool,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_key -> Text,
        public_jwk -> Text,
        created_at -> Timestamp,
        signs_from -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        unpublish_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> BigInt,
        occurred_at -> Timestamp,
        actor -> Text,
        action -> Text,
        target -> Nullable<Text>,
        outcome -> Text,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        details -> Text,
        prev_digest -> Text,
        digest -> Text,
    }
}

diesel::table! {
    refresh_tokens (digest) {
        digest -> Text,
        family_id -> Text,
        client_id -> Text,
        user_id -> Text,
        sid -> Text,
        scope -> Text,
        nonce -> Nullable<Text>,
        auth_time -> Timestamp,
        amr -> Text,
        acr -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        access_jti -> Text,
        access_exp -> Timestamp,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        granted_at -> Timestamp,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Text,
        secret -> Text,
        last_step -> BigInt,
        enrolled_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    recovery_codes (user_id, digest) {
        user_id -> Text,
        digest -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    policy_sets (seq) {
        seq -> BigInt,
        version -> Text,
        files -> Text,
        loaded_by -> Text,
        reason -> Text,
        loaded_at -> Timestamp,
    }
}

diesel::table! {
    outbox (id) {
        id -> Text,
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        text_body -> Text,
        html_body -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        campaign_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        priority -> Integer,
    }
}

diesel::table! {
    reset_campaigns (id) {
        id -> Text,
        kind -> Text,
        state -> Text,
        reason -> Text,
        audience -> Text,
        org_unit_id -> Nullable<Text>,
        launched_by -> Text,
        launched_at -> Timestamp,
        targeted -> BigInt,
        completed -> BigInt,
        milestone -> Integer,
        finished_at -> Nullable<Timestamp>,
        cancelled_by -> Nullable<Text>,
    }
}

diesel::table! {
    campaign_audience (campaign_id, kind, value) {
        campaign_id -> Text,
        kind -> Text,
        value -> Text,
    }
}

diesel::table! {
    campaign_members (campaign_id, user_id) {
        campaign_id -> Text,
        user_id -> Text,
        completed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    password_resets (id) {
        id -> Text,
        digest -> Text,
        user_id -> Text,
        campaign_id -> Nullable<Text>,
        channel -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        failed_tries -> Integer,
    }
}

diesel::table! {
    status_list_counters (client_id) {
        client_id -> Text,
        next_block -> BigInt,
    }
}

diesel::table! {
    status_list_blocks (client_id, block_no) {
        client_id -> Text,
        block_no -> BigInt,
        allocated_at -> Timestamp,
    }
}

diesel::table! {
    status_list_entries (client_id, list_no, idx) {
        client_id -> Text,
        list_no -> BigInt,
        idx -> BigInt,
        jti -> Text,
        user_id -> Nullable<Text>,
        auth_time -> Nullable<Timestamp>,
        sid -> Nullable<Text>,
        session_ends -> Nullable<Timestamp>,
        revoked -> Bool,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(users -> org_units (org_unit_id));
diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(user_roles -> roles (role_name));

diesel::allow_tables_to_appear_in_same_query!(
    signing_keys,
    org_units,
    users,
    roles,
    user_roles,
    clients,
    audit_events,
    server_meta,
    refresh_tokens,
    consents,
    totp_factors,
    recovery_codes,
    outbox,
    reset_campaigns,
    campaign_members,
    password_resets
);
