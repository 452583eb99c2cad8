-- Login protection: consecutive failed logins and the time an account stays locked until.
-- A successful login or an administrator's unlock sets both back.
ALTER TABLE users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until TEXT;
