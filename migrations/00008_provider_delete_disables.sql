-- docs/CONTRACT.md §1: deleting a provider also disables it. The CHECK ai_providers_deleted_disabled holds that,
-- but it made a plain `UPDATE ai_providers SET deleted = true` from psql fail unless it also said
-- `enabled = false`. Now soft-deleting (or inserting a deleted row) disables the provider by
-- itself; enabling a provider that is deleted is still refused by the CHECK.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION ai_providers_delete_disables() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted AND (TG_OP = 'INSERT' OR NOT OLD.deleted) THEN
        NEW.enabled := false;
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER ai_providers_delete_disables BEFORE INSERT OR UPDATE OF deleted ON ai_providers
    FOR EACH ROW EXECUTE FUNCTION ai_providers_delete_disables();

-- +goose Down
DROP TRIGGER ai_providers_delete_disables ON ai_providers;
DROP FUNCTION ai_providers_delete_disables();
