package mls

import (
	"bytes"
	"fmt"

	"github.com/meshchat/meshchat/mls/internal/keyschedule"
	"github.com/meshchat/meshchat/mls/internal/wire"
)

// pskSecret looks up the secret of a PreSharedKeyID (RFC 9420 §8.4): an
// external PSK from Config.ExternalPSK, a resumption PSK of this group from
// the current or a retained epoch, or of another group from
// Config.ResumptionPSK. A missing PSK wraps ErrMissingPSK.
func (g *Group) pskSecret(id *wire.PreSharedKeyID) ([]byte, error) {
	return lookupPSK(g.cfg, id, func(groupID []byte, epoch uint64) ([]byte, bool) {
		if !bytes.Equal(groupID, g.ctx.GroupID) {
			return nil, false
		}
		if epoch == g.ctx.Epoch && g.ks != nil {
			return g.ks.resumption, true
		}
		for _, pe := range g.past {
			if pe.epoch == epoch {
				return pe.resumptionPSK, true
			}
		}
		return nil, false
	})
}

// lookupPSK resolves id with the Config's callbacks, trying own first for
// resumption PSKs.
func lookupPSK(cfg *Config, id *wire.PreSharedKeyID, own func(groupID []byte, epoch uint64) ([]byte, bool)) ([]byte, error) {
	switch id.PSKType {
	case wire.PSKTypeExternal:
		if psk, ok := cfg.externalPSK(id.PSKID); ok {
			return psk, nil
		}
		return nil, fmt.Errorf("external psk %x: %w", id.PSKID, ErrMissingPSK)
	case wire.PSKTypeResumption:
		if own != nil {
			if psk, ok := own(id.PSKGroupID, id.PSKEpoch); ok {
				return psk, nil
			}
		}
		if psk, ok := cfg.resumptionPSK(id.PSKGroupID, id.PSKEpoch); ok {
			return psk, nil
		}
		return nil, fmt.Errorf("resumption psk of group %x epoch %d: %w", id.PSKGroupID, id.PSKEpoch, ErrMissingPSK)
	}
	return nil, fmt.Errorf("psk type %v: %w", id.PSKType, ErrMalformed)
}

// pskInputs resolves a list of PreSharedKeyIDs into the inputs of the PSK
// chain (RFC 9420 §8.4), in order.
func pskInputs(ids []wire.PreSharedKeyID, lookup func(*wire.PreSharedKeyID) ([]byte, error)) ([]keyschedule.PSK, error) {
	out := make([]keyschedule.PSK, 0, len(ids))
	for i := range ids {
		secret, err := lookup(&ids[i])
		if err != nil {
			return nil, err
		}
		enc, err := wire.Marshal(&ids[i])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		out = append(out, keyschedule.PSK{ID: enc, Secret: secret})
	}
	return out, nil
}
