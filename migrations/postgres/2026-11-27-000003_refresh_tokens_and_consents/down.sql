DROP TABLE consents;
DROP TABLE refresh_tokens;
