package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"sotto/relay"
	"sotto/relay/blobstore"
)

// BlobConfig is the attachment store part of the serve configuration.
type BlobConfig struct {
	// BlobDir holds the blob files and their index ("": DataDir/blobs;
	// "off": no attachment store).
	BlobDir     string
	BlobMaxSize int64
	BlobQuota   int64
	BlobTTL     time.Duration
	// BlobUploadTTL bounds how long an upload may stay incomplete.
	BlobUploadTTL time.Duration
}

func defaultBlobConfig() BlobConfig {
	d := relay.DefaultBlobConfig()
	return BlobConfig{BlobMaxSize: d.MaxSize, BlobQuota: d.Quota, BlobTTL: d.TTL, BlobUploadTTL: d.UploadTTL}
}

func blobFlags(fs *flag.FlagSet, c *BlobConfig) {
	fs.StringVar(&c.BlobDir, "blob-dir", c.BlobDir, "attachment blob directory (default: DATA/blobs; \"off\": no attachments)")
	fs.Int64Var(&c.BlobMaxSize, "blob-max-size", c.BlobMaxSize, "largest attachment blob in bytes")
	fs.Int64Var(&c.BlobQuota, "blob-quota", c.BlobQuota, "attachment bytes each device may create within one -blob-ttl (charged at creation, not refunded on delete)")
	fs.DurationVar(&c.BlobTTL, "blob-ttl", c.BlobTTL, "delete attachment blobs this long after upload")
	fs.DurationVar(&c.BlobUploadTTL, "blob-upload-ttl", c.BlobUploadTTL, "delete uploads still incomplete after this long")
}

// openBlobs opens the blob index and configures rcfg to serve blobs; the
// closer releases the index (nil when off).
func openBlobs(ctx context.Context, dataDir string, c BlobConfig, rcfg *relay.Config) (io.Closer, error) {
	if c.BlobDir == "off" {
		return nil, nil
	}
	dir := c.BlobDir
	if dir == "" {
		dir = filepath.Join(dataDir, "blobs")
	}
	rcfg.Blobs = relay.DefaultBlobConfig()
	rcfg.Blobs.Dir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob dir: %w", err)
	}
	idx, err := blobstore.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	rcfg.Blobs.Index = idx
	rcfg.Blobs.MaxSize, rcfg.Blobs.Quota, rcfg.Blobs.TTL = c.BlobMaxSize, c.BlobQuota, c.BlobTTL
	rcfg.Blobs.UploadTTL = c.BlobUploadTTL
	return idx, nil
}
