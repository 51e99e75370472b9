#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <tern/error.h>
#include <tern/log.h>

#include "store.h"
#include "util.h"

#define STORE_INITIAL_MAP (64u * 1024 * 1024)
#define STORE_MAX_MAP ((size_t)1 << 40)
/* A commit that fails with EIO while less than this is free failed for space. */
#define STORE_FULL_BELOW (256u * 1024)

struct tern_store {
	MDB_env *env;
	MDB_dbi dbis[TERN_STORE_MAX_DBS];
	int ndbis;
	int rdonly;
	size_t mapsize;
	/* Held (shared) by a read transaction of another thread, (exclusive)
	 * by the growth of the map, which LMDB allows only while no
	 * transaction of the process is live. */
	pthread_rwlock_t grow;
};

int tern_store_mdb_err(int mdb_rc, const char *what)
{
	if (mdb_rc == 0)
		return TERN_OK;
	if (mdb_rc == MDB_MAP_FULL)
		return TERN_STORE_MAP_FULL;
	if (mdb_rc == MDB_NOTFOUND)
		return TERN_ENOENT;
	if (mdb_rc == ENOSPC || mdb_rc == EDQUOT)
		return tern_fail(TERN_EIO,
		                 "the disk holding the store is full (%s: %s); nothing of this "
		                 "write was kept: free space, then try again",
		                 what, mdb_strerror(mdb_rc));
	return tern_fail(mdb_rc == ENOMEM ? TERN_ENOMEM : TERN_EIO, "%s: %s", what,
	                 mdb_strerror(mdb_rc));
}

/* LMDB turns a short write into EIO ("TODO: Use which error code?"), which is
 * what a disk that fills in the middle of a commit produces; ask the
 * filesystem so the operator is told the actual cause. */
static int store_commit_err(tern_store *s, int mdb_rc)
{
	struct statvfs vfs;
	mdb_filehandle_t fd;

	if (mdb_rc == EIO && mdb_env_get_fd(s->env, &fd) == 0 && fstatvfs(fd, &vfs) == 0 &&
	    (unsigned long long)vfs.f_bavail * vfs.f_frsize < STORE_FULL_BELOW)
		mdb_rc = ENOSPC;
	return tern_store_mdb_err(mdb_rc, "mdb_txn_commit");
}

int tern_store_open(const char *dir, const char *const *dbnames, int flags, size_t initial_map,
                    tern_store **out)
{
	tern_store *s;
	MDB_txn *txn = NULL;
	MDB_envinfo info;
	int rc, n = 0;

	while (dbnames[n])
		n++;
	if (n > TERN_STORE_MAX_DBS)
		return TERN_EINVAL;
	if (!(flags & TERN_STORE_RDONLY) && (rc = tern_mkdirs(dir, 0700)) != TERN_OK)
		return rc;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return TERN_ENOMEM;
	s->rdonly = !!(flags & TERN_STORE_RDONLY);
	pthread_rwlock_init(&s->grow, NULL);
	s->ndbis = n;
	if ((rc = mdb_env_create(&s->env)) != 0) {
		rc = tern_store_mdb_err(rc, "mdb_env_create");
		goto fail_free;
	}
	mdb_env_set_maxdbs(s->env, TERN_STORE_MAX_DBS);
	/* A map size of 0 keeps the size recorded in the file, grown earlier. */
	if ((rc = mdb_env_set_mapsize(s->env, s->rdonly     ? 0
	                                      : initial_map ? initial_map
	                                                    : STORE_INITIAL_MAP)) != 0) {
		rc = tern_store_mdb_err(rc, "mdb_env_set_mapsize");
		goto fail_env;
	}
	/* MDB_NOTLS: read transactions of the CLI's fallback view may outlive a
	 * thread's use; default durability (fsync at commit) stays on. */
	rc = mdb_env_open(s->env, dir, MDB_NOTLS | (s->rdonly ? MDB_RDONLY : 0), 0600);
	if (rc != 0) {
		rc = rc == ENOENT ? tern_fail(TERN_ENOENT, "no store in %s", dir)
		                  : tern_store_mdb_err(rc, dir);
		goto fail_env;
	}
	mdb_env_info(s->env, &info);
	s->mapsize = info.me_mapsize;
	if ((rc = mdb_txn_begin(s->env, NULL, s->rdonly ? MDB_RDONLY : 0, &txn)) != 0) {
		rc = tern_store_mdb_err(rc, "mdb_txn_begin");
		goto fail_env;
	}
	for (int i = 0; i < n; i++) {
		const char *name = dbnames[i] + (dbnames[i][0] == '?');
		rc = mdb_dbi_open(txn, name, s->rdonly ? 0 : MDB_CREATE, &s->dbis[i]);
		if (rc == MDB_NOTFOUND && s->rdonly && name != dbnames[i]) {
			s->dbis[i] = 0;
			continue;
		}
		if (rc != 0) {
			rc =
			    rc == MDB_NOTFOUND
			        ? tern_fail(TERN_ENOENT, "store %s has no database '%s'", dir, name)
			        : tern_store_mdb_err(rc, "mdb_dbi_open");
			goto fail_txn;
		}
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		rc = store_commit_err(s, rc);
		goto fail_env;
	}
	if (!s->rdonly) {
		int dead = 0;
		mdb_reader_check(s->env, &dead);
	}
	*out = s;
	return TERN_OK;

fail_txn:
	mdb_txn_abort(txn);
fail_env:
	mdb_env_close(s->env);
fail_free:
	free(s);
	return rc;
}

void tern_store_close(tern_store **store)
{
	if (store == NULL || *store == NULL)
		return;
	mdb_env_close((*store)->env);
	pthread_rwlock_destroy(&(*store)->grow);
	free(*store);
	*store = NULL;
}

MDB_dbi tern_store_dbi(const tern_store *store, int index)
{
	if (index < 0 || index >= store->ndbis)
		fatalx("tern_store_dbi: no database %d", index);
	return store->dbis[index];
}

size_t tern_store_mapsize(const tern_store *store)
{
	return store->mapsize;
}

static int store_grow(tern_store *s)
{
	size_t next = s->mapsize * 2;
	int rc;

	if (next > STORE_MAX_MAP)
		return tern_fail(TERN_EIO, "store map would exceed %zu bytes",
		                 (size_t)STORE_MAX_MAP);
	/* Safe: tern_store_write is the only writer, no transaction of this
	 * thread is live, and other threads' wait (tern_store_thread_read_begin). */
	pthread_rwlock_wrlock(&s->grow);
	rc = mdb_env_set_mapsize(s->env, next);
	pthread_rwlock_unlock(&s->grow);
	if (rc != 0)
		return tern_store_mdb_err(rc, "mdb_env_set_mapsize");
	log_info("store map grown from %zu to %zu MiB", s->mapsize >> 20, next >> 20);
	s->mapsize = next;
	return TERN_OK;
}

int tern_store_write(tern_store *store, tern_store_apply_fn *apply, void *arg)
{
	MDB_txn *txn;
	int rc;

	if (store->rdonly)
		return tern_fail(TERN_EINVAL, "store opened read-only");
	for (;;) {
		if ((rc = mdb_txn_begin(store->env, NULL, 0, &txn)) != 0) {
			if (rc == MDB_MAP_RESIZED) {
				/* Another process grew the map: adopt its size. */
				mdb_env_set_mapsize(store->env, 0);
				continue;
			}
			return tern_store_mdb_err(rc, "mdb_txn_begin");
		}
		rc = apply(txn, arg);
		if (rc == TERN_OK) {
			rc = mdb_txn_commit(txn);
			if (rc == 0)
				return TERN_OK;
			rc = store_commit_err(store, rc);
		} else {
			mdb_txn_abort(txn);
		}
		if (rc != TERN_STORE_MAP_FULL)
			return rc;
		if ((rc = store_grow(store)) != TERN_OK)
			return rc;
	}
}

int tern_store_put_tail(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val, unsigned int flags)
{
	MDB_cursor *c;
	MDB_val lk, lv;
	unsigned int dbflags = 0;
	int rc, tail;

	if ((rc = mdb_dbi_flags(txn, dbi, &dbflags)) != 0)
		return rc;
	if (dbflags & MDB_DUPSORT)
		return mdb_put(txn, dbi, key, val, flags);
	if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0)
		return rc;
	rc = mdb_cursor_get(c, &lk, &lv, MDB_LAST);
	/* Compared before the put: lk points into the map, valid only until
	 * the next write. */
	tail = rc == MDB_NOTFOUND || (rc == 0 && mdb_cmp(txn, dbi, key, &lk) > 0);
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	return mdb_put(txn, dbi, key, val, tail ? flags | MDB_APPEND : flags);
}

int tern_store_read_begin(tern_store *store, MDB_txn **txn)
{
	int rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, txn);

	if (rc == MDB_MAP_RESIZED) {
		mdb_env_set_mapsize(store->env, 0);
		rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, txn);
	}
	return tern_store_mdb_err(rc, "mdb_txn_begin");
}

int tern_store_thread_read_begin(tern_store *store, MDB_txn **txn)
{
	int rc;

	pthread_rwlock_rdlock(&store->grow);
	/* No mdb_env_set_mapsize here (MDB_MAP_RESIZED: another process grew
	 * the map): that is the loop's thread's to do; try again later. */
	if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, txn)) != 0) {
		pthread_rwlock_unlock(&store->grow);
		*txn = NULL;
	}
	return tern_store_mdb_err(rc, "mdb_txn_begin");
}

void tern_store_thread_read_end(tern_store *store, MDB_txn *txn)
{
	if (txn == NULL)
		return;
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&store->grow);
}

int tern_store_copy(const char *dir, const char *out, uint64_t *bytes)
{
	MDB_env *env = NULL;
	char path[4096];
	struct stat st;
	mode_t old_mask;
	int rc;

	snprintf(path, sizeof(path), "%s/data.mdb", out);
	if (stat(path, &st) == 0)
		return tern_fail(TERN_EEXIST, "%s already holds a store; give an empty directory",
		                 out);
	if ((rc = tern_mkdirs(out, 0700)) != TERN_OK)
		return rc;
	if ((rc = mdb_env_create(&env)) != 0)
		return tern_store_mdb_err(rc, "mdb_env_create");
	mdb_env_set_maxdbs(env, TERN_STORE_MAX_DBS);
	/* Read-only, beside the running daemon: the copy is one read
	 * transaction, consistent as of its start. */
	if ((rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0) {
		rc = rc == ENOENT ? tern_fail(TERN_ENOENT, "no store in %s", dir)
		                  : tern_store_mdb_err(rc, dir);
		goto out;
	}
	/* LMDB creates the copy 0666 less the umask: 0644 under the usual one,
	 * a store of sealed messages and an audit log readable by every local
	 * user (a new user found it so). 0600, as the daemons' own. */
	old_mask = umask(077);
	rc = mdb_env_copy2(env, out, MDB_CP_COMPACT);
	umask(old_mask);
	if (rc != 0) {
		rc = tern_fail(TERN_EIO, "copying %s to %s: %s", dir, out, mdb_strerror(rc));
		goto out;
	}
	if (chmod(path, 0600) != 0) {
		rc = tern_fail(TERN_EIO, "making %s private (0600): %s", path, strerror(errno));
		goto out;
	}
	rc = TERN_OK;
	if (bytes)
		*bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
out:
	mdb_env_close(env);
	return rc;
}
