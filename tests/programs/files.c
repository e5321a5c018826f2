/* Files in a preopened directory, whose path is argv[1]: create a
 * directory, write, read back, append, seek and tell, pread/pwrite, stat,
 * truncate, rename, list (sorted), unlink, rmdir, and the errors of a
 * missing file and of a non-empty directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char path_buf[4][512];
static const char *at(int slot, const char *root, const char *name) {
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", root, name);
    return path_buf[slot];
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: files DIR\n");
        return 2;
    }
    const char *root = argv[1];

    if (mkdir(at(0, root, "work"), 0755) != 0) return perror("mkdir"), 3;
    FILE *f = fopen(at(0, root, "work/notes.txt"), "w");
    if (!f) return perror("fopen w"), 4;
    for (int i = 1; i <= 5; i++) fprintf(f, "line %d of the notes\n", i);
    fclose(f);

    f = fopen(at(0, root, "work/notes.txt"), "a");
    if (!f) return perror("fopen a"), 5;
    fputs("appended line\n", f);
    fclose(f);

    f = fopen(at(0, root, "work/notes.txt"), "r");
    if (!f) return perror("fopen r"), 6;
    char line[128];
    int n = 0;
    while (fgets(line, sizeof line, f)) printf("read %d: %s", ++n, line);
    fseek(f, 5, SEEK_SET);
    long told = ftell(f);
    int next = fgetc(f);
    printf("tell after seek: %ld, next char: %c\n", told, next);
    fseek(f, -14, SEEK_END);
    printf("from end: %s", fgets(line, sizeof line, f));
    fclose(f);

    int fd = open(at(0, root, "work/data.bin"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return perror("open"), 7;
    unsigned char block[256];
    for (int i = 0; i < 256; i++) block[i] = (unsigned char)i;
    for (int i = 0; i < 16; i++)
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block) return perror("write"), 8;
    if (pwrite(fd, "HELLO", 5, 1000) != 5) return perror("pwrite"), 9;
    char five[6] = {0};
    if (pread(fd, five, 5, 1000) != 5) return perror("pread"), 10;
    printf("pread: %s, offset still %ld\n", five, (long)lseek(fd, 0, SEEK_CUR));
    struct stat st;
    if (fstat(fd, &st) != 0) return perror("fstat"), 11;
    printf("size %lld, regular %d\n", (long long)st.st_size, S_ISREG(st.st_mode) != 0);
    if (ftruncate(fd, 100) != 0) return perror("ftruncate"), 12;
    fstat(fd, &st);
    printf("truncated to %lld\n", (long long)st.st_size);
    close(fd);

    if (rename(at(0, root, "work/data.bin"), at(1, root, "work/renamed.bin")) != 0)
        return perror("rename"), 13;
    if (mkdir(at(0, root, "work/sub"), 0755) != 0) return perror("mkdir sub"), 14;
    f = fopen(at(0, root, "work/sub/inner.txt"), "w");
    if (!f) return perror("fopen inner"), 15;
    fputs("inner\n", f);
    fclose(f);

    DIR *d = opendir(at(0, root, "work"));
    if (!d) return perror("opendir"), 16;
    char *names[32];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 32)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[count++] = strdup(e->d_name);
    closedir(d);
    qsort(names, count, sizeof *names, cmp);
    printf("listing:");
    for (int i = 0; i < count; i++) {
        struct stat es;
        snprintf(line, sizeof line, "work/%s", names[i]);
        stat(at(1, root, line), &es);
        printf(" %s%s", names[i], S_ISDIR(es.st_mode) ? "/" : "");
        free(names[i]);
    }
    printf("\n");

    /* One call per statement: argument evaluation order is unspecified. */
    errno = 0;
    FILE *missing = fopen(at(0, root, "work/missing"), "r");
    printf("open missing: %s\n", missing ? "opened" : strerror(errno));
    errno = 0;
    int rmdir_result = rmdir(at(0, root, "work/sub"));
    printf("rmdir non-empty: %d %s\n", rmdir_result,
           errno == ENOTEMPTY ? "ENOTEMPTY" : strerror(errno));

    if (unlink(at(0, root, "work/sub/inner.txt")) != 0) return perror("unlink inner"), 17;
    if (rmdir(at(0, root, "work/sub")) != 0) return perror("rmdir sub"), 18;
    if (unlink(at(0, root, "work/renamed.bin")) != 0) return perror("unlink bin"), 19;
    if (unlink(at(0, root, "work/notes.txt")) != 0) return perror("unlink notes"), 20;
    if (rmdir(at(0, root, "work")) != 0) return perror("rmdir work"), 21;
    printf("cleaned up: %s\n", access(at(0, root, "work"), F_OK) == 0 ? "no" : "yes");
    return 0;
}
