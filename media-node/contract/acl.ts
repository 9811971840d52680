/** Stream access control: the ACL model, how keys are hashed, and the store edges read ACLs from. */
export * from './src/acl/AclStore.js';
export * from './src/acl/hashing.js';
export * from './src/acl/model.js';
