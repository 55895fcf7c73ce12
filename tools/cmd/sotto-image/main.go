// Command sotto-image builds the OCI image of sottod without a container
// engine: a scratch base, one layer holding the static sottod binary, an
// /etc/passwd entry for its user and its state folder, written as an OCI
// image layout (a folder) and as a tarball that podman, docker or skopeo
// load. Every timestamp is zero, so the same binary gives the same image.
//
//	sotto-image -sottod dist/v1.0.0/linux_amd64/sottod -arch amd64 -version v1.0.0 -out dist/v1.0.0/oci
//	sotto-image -check dist/v1.0.0/oci      (print the image's digest, entrypoint and sottod's SHA-256)
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The unit's user in the image: a fixed unprivileged id.
const uid = 65532

func main() {
	sottod := flag.String("sottod", "", "the sottod binary (linux, static)")
	arch := flag.String("arch", "amd64", "GOARCH of the binary")
	ver := flag.String("version", "v0.0.0-dev", "the image's version tag")
	out := flag.String("out", "", "output folder: OUT/layout (OCI image layout) and OUT/sottod-image.tar")
	check := flag.String("check", "", "read the OCI image layout FOLDER and describe it")
	flag.Parse()
	var err error
	switch {
	case *check != "":
		err = describe(*check)
	case *sottod != "" && *out != "":
		err = build(*sottod, *arch, *ver, *out)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sotto-image:", err)
		os.Exit(1)
	}
}

func build(sottod, arch, ver, out string) error {
	bin, err := os.ReadFile(sottod)
	if err != nil {
		return err
	}
	layerTar, err := rootfs(bin)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = arch, "linux"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", uid, uid),
		Entrypoint:   []string{"/usr/bin/sottod", "serve", "-data", "/var/lib/sotto"},
		Cmd:          []string{"-listen", ":8080"},
		WorkingDir:   "/var/lib/sotto",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "3478/udp": {}, "3478/tcp": {}},
		Volumes:      map[string]struct{}{"/var/lib/sotto": {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":   "sottod",
			"org.opencontainers.image.version": ver,
		},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	dir := filepath.Join(out, "layout")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ver})); err != nil {
		return err
	}
	tag, err := name.NewTag("localhost/sottod:" + ver)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(filepath.Join(out, "sottod-image.tar"), tag, img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("sotto-image: localhost/sottod:%s %s in %s\n", ver, d, out)
	return nil
}

// rootfs is the layer: /usr/bin/sottod, /etc/passwd and /etc/group with
// the sotto user, /var/lib/sotto owned by it, /tmp. Fixed times and owners.
func rootfs(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	dir := func(name string, mode int64, owner int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: owner, Gid: owner, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nsotto:x:%d:%d:Sotto relay:/var/lib/sotto:/sbin/nologin\n", uid, uid)
	group := fmt.Sprintf("root:x:0:\nsotto:x:%d:\n", uid)
	err := errors.Join(
		dir("etc/", 0o755, 0), file("etc/passwd", 0o644, []byte(passwd)), file("etc/group", 0o644, []byte(group)),
		dir("tmp/", 0o1777, 0),
		dir("usr/", 0o755, 0), dir("usr/bin/", 0o755, 0), file("usr/bin/sottod", 0o755, bin),
		dir("var/", 0o755, 0), dir("var/lib/", 0o755, 0), dir("var/lib/sotto/", 0o700, uid),
		tw.Close())
	return buf.Bytes(), err
}

func describe(dir string) error {
	p, err := layout.FromPath(filepath.Join(dir, "layout"))
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(im.Manifests) != 1 {
		return fmt.Errorf("%d images in the layout, want 1", len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var sum string
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if h.Name == "usr/bin/sottod" {
				hh := sha256.New()
				if _, err := io.Copy(hh, tr); err != nil {
					return err
				}
				sum = fmt.Sprintf("%x", hh.Sum(nil))
			}
		}
		rc.Close()
	}
	fmt.Printf("image %s\nentrypoint %q %q\nuser %s\nsottod sha256 %s\n", im.Manifests[0].Digest, cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.User, sum)
	return nil
}
